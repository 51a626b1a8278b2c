"""Splitting one dataflow into one Dagster step per asset group.

Independent groups then run in parallel under the multiprocess or Celery executor, and a group
loads what other groups computed from the value store. A group is one step, so groups must not
depend on each other in a circle: Dagster would then run one group as two steps, and the second
would silently ignore the run config given to the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter

from orchestration.dataflow import Dataflow
from orchestration.errors import DataflowError


def assets_by_group(dataflow: Dataflow, group_of: Mapping[str, str]) -> dict[str, list[str]]:
    """The dataflow's assets per group, each in topological order, groups upstream first."""
    members: dict[str, list[str]] = {}
    upstream_groups: dict[str, set[str]] = {}
    crossing: dict[tuple[str, str], tuple[str, str]] = {}  # (from group, to group) -> a node pair
    for name, asset in dataflow.assets.items():
        group = group_of[name]
        members.setdefault(group, []).append(name)
        upstream_groups.setdefault(group, set())
        for up in asset.upstream:
            if group_of[up] != group:
                upstream_groups[group].add(group_of[up])
                crossing.setdefault((group_of[up], group), (up, name))
    try:
        order = list(TopologicalSorter(upstream_groups).static_order())
    except CycleError as error:
        circle = error.args[1]  # each group feeds the next; the last is the first again
        edges = [crossing[pair] for pair in zip(circle, circle[1:])]
        path = ", ".join(f"{up} ({group_of[up]}) → {down} ({group_of[down]})" for up, down in edges)
        raise DataflowError(
            f"Asset groups {' → '.join(circle)} of dataflow '{dataflow.name}' depend on each other "
            f"in a circle: {path}. Each group runs as one step, so none of them can go first. Fix: "
            "put these nodes in one group (@tag(**{'dagster.group': ...}) or the translator's "
            "get_group_name), or use hamilton_assets() to run the dataflow as one step."
        ) from None
    return {group: members[group] for group in order}
