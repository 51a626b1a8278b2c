"""What one step computes: the selection, the nodes it needs, and what it loads instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestration.dataflow import Dataflow


@dataclass(frozen=True)
class ExecutionPlan:
    """What one step computes, loads and reads from run config."""

    final_vars: tuple[str, ...]
    loads: tuple[str, ...]
    inputs: tuple[str, ...]
    assets: tuple[str, ...]


def plan_selection(dataflow: Dataflow, selected: Sequence[str]) -> ExecutionPlan:
    """Walks upstream from the selection, stopping at assets that are not selected: those are
    loaded from storage instead of recomputed."""
    chosen = set(selected)
    final_vars = [name for name in dataflow.order if name in chosen]
    final_vars += [check.node_name for name in final_vars for check in dataflow.assets[name].checks]
    outside = {name for name in dataflow.assets if name not in chosen}
    needed = dataflow.needed_by(final_vars, stop_at=outside)
    return ExecutionPlan(
        final_vars=tuple(final_vars),
        loads=tuple(name for name in dataflow.order if name in needed and name in outside),
        inputs=tuple(sorted(name for name in needed if dataflow.nodes[name].is_external_input)),
        assets=tuple(name for name in final_vars if name in chosen),
    )
