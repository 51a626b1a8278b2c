"""`hamilton_assets`: one subsettable multi-asset per dataflow, one Dagster step per selection;
`hamilton_assets_by_group`: one per asset group, so groups can run in parallel."""

from __future__ import annotations

import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from types import ModuleType
from typing import Any

import dagster as dg
from dagster._core.definitions.utils import DISALLOWED_NAMES

from orchestration.dataflow import Dataflow, InputNode
from orchestration.errors import DataflowError
from orchestration.execution.hamilton_stream import ParallelNodes, ResultStream
from orchestration.execution.plan import plan_selection
from orchestration.execution.runner import StepRunner
from orchestration.heap import paused_gc
from orchestration.lineage import runs as lineage_runs
from orchestration.lineage.observer import OpenLineageObserver
from orchestration.monitoring.metrics import PrometheusObserver
from orchestration.monitoring.terminal import TerminalProgress
from orchestration.options import StepOptions
from orchestration.runtime import HamiltonRuntime
from orchestration.translator import HamiltonTranslator, is_valid_key

CONFIG_TYPES = {str: str, int: int, float: float, bool: bool}
DEFAULT_GROUP = "default"  # Dagster's group for assets without one
UpstreamAsset = dg.AssetsDefinition | dg.AssetSpec | dg.AssetKey


@paused_gc()  # the graph, specs and multi-asset built here live as long as the definitions
def hamilton_assets(
    *modules: ModuleType,
    config: Mapping[str, Any] | None = None,
    translator: HamiltonTranslator | None = None,
    name: str | None = None,
    upstream_assets: Sequence[UpstreamAsset] = (),
    options: StepOptions | None = None,
    **step_options: Any,
) -> dg.AssetsDefinition:
    """Turns Hamilton modules into Dagster assets that run as one subsettable step.

    Every user function becomes an asset (its key, group, owners and more from `translator`);
    `@extract_columns` children are columns of their parent, `@check_output` validators become
    asset checks, and external inputs become run config, with defaults from `config` (which is
    also Hamilton's config) or the function signature. An input named after one of
    `upstream_assets` depends on that asset and is read from the value store. `name` names the
    multi-asset (default: the modules' names).

    How the step runs is `options`, a `StepOptions`, or any of its fields as a keyword argument:

        hamilton_assets(sales, config={"region": "eu"}, retry_policy=dg.RetryPolicy(max_retries=2))

    Materializing any selection runs only the nodes it needs; assets outside it are loaded from
    the value store. `dg.materialize([assets])` needs no resources: the step's `HamiltonRuntime`
    comes with the assets.
    """
    options = StepOptions.combine(options, step_options, "hamilton_assets")
    flow = _DataflowAssets(modules, config, translator, name, upstream_assets, options)
    return flow.multi_asset(flow.dataflow.name, list(flow.dataflow.assets))


@paused_gc()
def hamilton_assets_by_group(
    *modules: ModuleType,
    config: Mapping[str, Any] | None = None,
    translator: HamiltonTranslator | None = None,
    name: str | None = None,
    upstream_assets: Sequence[UpstreamAsset] = (),
    options: StepOptions | None = None,
    **step_options: Any,
) -> list[dg.AssetsDefinition]:
    """`hamilton_assets` (the same arguments), split into one subsettable multi-asset (one step)
    per asset group.

    Groups come from the translator (`get_group_name`: the `dagster.group` tag, else the module),
    so independent groups run in parallel under the multiprocess or Celery executor. A group's
    step loads the assets of other groups it reads from the value store, as stored earlier in the
    same run. Each multi-asset is named `<dataflow>__<group>` and takes run config for only the
    inputs its own nodes read. Groups that depend on each other in a circle are refused.
    """
    options = StepOptions.combine(options, step_options, "hamilton_assets_by_group")
    flow = _DataflowAssets(modules, config, translator, name, upstream_assets, options)
    groups = assets_by_group(flow.dataflow, flow.group_of)
    return [
        flow.multi_asset(f"{flow.dataflow.name}__{group}", assets, needed_inputs=True)
        for group, assets in groups.items()
    ]


class _DataflowAssets:
    """One dataflow's specs, checks and run config, built once; cut into one or more multi-assets."""

    def __init__(
        self,
        modules: Sequence[ModuleType],
        config: Mapping[str, Any] | None,
        translator: HamiltonTranslator | None,
        name: str | None,
        upstream_assets: Sequence[UpstreamAsset],
        options: StepOptions,
    ):
        self.options = options
        self.translator = translator = translator or HamiltonTranslator()
        self.stream = ResultStream()
        adapters: list[Any] = [self.stream]
        if options.max_parallel_nodes is not None:
            adapters.append(ParallelNodes(options.max_parallel_nodes))
        self.dataflow = dataflow = Dataflow(modules, config, name=name, adapters=adapters)

        self.keys = {node: translator._key_of(asset.node) for node, asset in dataflow.assets.items()}
        _check_keys(dataflow, self.keys)
        self.upstream_inputs = _upstream_inputs(dataflow, upstream_assets)
        partition_input = options.partition_input
        if partition_input is not None and (
            options.partitions_def is None or partition_input not in dataflow.inputs
        ):
            raise DataflowError(
                f"partition_input={partition_input!r} needs partitions_def and an input of that name; "
                f"the dataflow's inputs are: {', '.join(dataflow.inputs) or 'none'}."
            )
        self.config_schema, self.fixed_inputs = _run_config(dataflow, self.upstream_inputs, partition_input)

        self.specs: dict[str, dg.AssetSpec] = {}
        self.check_specs: dict[str, list[dg.AssetCheckSpec]] = {}
        for node_name, asset in dataflow.assets.items():
            spec = translator.get_asset_spec(
                asset.node,
                upstream=[dataflow.assets[up].node for up in asset.upstream],
                columns=[dataflow.nodes[column] for column in asset.columns],
                extra_deps=[self.upstream_inputs[i] for i in asset.inputs if i in self.upstream_inputs],
            )
            if spec.key != self.keys[node_name]:
                raise DataflowError(
                    f"Node '{node_name}': get_asset_spec() returned key {spec.key.to_user_string()} but "
                    f"get_asset_key() returned {self.keys[node_name].to_user_string()}; override "
                    "get_asset_key() to change keys so dependencies stay consistent."
                )
            self.specs[node_name] = spec
            self.check_specs[node_name] = [
                dg.AssetCheckSpec(
                    name=check.check_name,
                    asset=spec.key,
                    blocking=check.blocking,
                    description=check.description,
                )
                for check in asset.checks
            ]
        self.group_of = {
            node_name: spec.group_name or DEFAULT_GROUP for node_name, spec in self.specs.items()
        }
        # One object for all of this dataflow's multi-assets: Dagster requires the same resource
        # under one key to be the same object.
        self.runtime = options.runtime or HamiltonRuntime()
        self.runtime_key = f"{dataflow.name}_runtime"

    def multi_asset(
        self, name: str, assets: Sequence[str], needed_inputs: bool = False
    ) -> dg.AssetsDefinition:
        """The given assets as one subsettable step; with `needed_inputs`, its run config holds only
        the inputs those assets' nodes read (other assets are loaded, not computed, there)."""
        config_schema = self.config_schema
        if needed_inputs:
            read = set(plan_selection(self.dataflow, assets).inputs)
            config_schema = {key: field for key, field in config_schema.items() if key in read}
        options = self.options
        runner = StepRunner(
            self.dataflow,
            self.stream,
            self.keys,
            self.upstream_inputs,
            self.fixed_inputs,
            self.translator,
            options,
            self.runtime_key,
            # Built-ins first, each one per multi-asset; then the caller's, shared as given.
            [OpenLineageObserver(), PrometheusObserver(), TerminalProgress(), *options.observers],
        )

        with warnings.catch_warnings():  # `resource_defs` of a multi-asset is beta in Dagster 1.13
            warnings.simplefilter("ignore", dg.BetaWarning)

            @dg.multi_asset(
                name=name,
                specs=[self.specs[asset] for asset in assets],
                check_specs=[check for asset in assets for check in self.check_specs[asset]],
                can_subset=True,
                config_schema=config_schema,
                partitions_def=options.partitions_def,
                retry_policy=options.retry_policy,
                backfill_policy=options.backfill_policy,
                pool=options.pool,
                op_tags={**(options.op_tags or {}), lineage_runs.DATAFLOW_TAG: self.dataflow.name},
                resource_defs={self.runtime_key: self.runtime},
                hooks={lineage_runs.step_succeeded, lineage_runs.step_failed},
            )
            def _dataflow(context):  # annotations are strings here, which Dagster's check rejects
                yield from runner.run(context)

        return _dataflow


def _check_keys(dataflow: Dataflow, keys: Mapping[str, dg.AssetKey]) -> None:
    owners: dict[dg.AssetKey, str] = {}
    for node_name, key in keys.items():
        if not is_valid_key(key):
            raise DataflowError(
                f"Node '{node_name}' maps to asset key {key.to_user_string()!r}, which has characters "
                "Dagster does not allow. Fix: use letters, digits and '_' in each '/'-separated part "
                "(check the node's dagster.asset_key tag or the translator's key prefix)."
            )
        if "__".join(key.path) in DISALLOWED_NAMES:
            raise DataflowError(
                f"Node '{node_name}' maps to asset key {key.to_user_string()!r}, a name Dagster "
                "reserves. Fix: rename the function, or give it a dagster.asset_key tag "
                f"(e.g. @tag(**{{'dagster.asset_key': '{node_name}_value'}}))."
            )
        if key in owners:
            raise DataflowError(
                f"Nodes '{owners[key]}' and '{node_name}' both map to asset key "
                f"{key.to_user_string()}. Fix: give one of them a different dagster.asset_key tag."
            )
        owners[key] = node_name


def _upstream_inputs(dataflow: Dataflow, upstream_assets: Sequence[UpstreamAsset]) -> dict[str, dg.AssetKey]:
    """Inputs named after an upstream asset (its last key part, or its whole key joined by `__`)."""
    names: dict[str, dg.AssetKey] = {}
    for upstream in upstream_assets:
        if isinstance(upstream, dg.AssetsDefinition):
            upstream_keys = list(upstream.keys)
        elif isinstance(upstream, dg.AssetSpec):
            upstream_keys = [upstream.key]
        else:
            upstream_keys = [dg.AssetKey.from_coercible(upstream)]
        for key in upstream_keys:
            names.setdefault(key.path[-1], key)
            names["__".join(key.path)] = key
    return {name: names[name] for name in dataflow.inputs if name in names}


def _run_config(
    dataflow: Dataflow, upstream_inputs: Mapping[str, dg.AssetKey], partition_input: str | None
) -> tuple[dict[str, dg.Field], dict[str, Any]]:
    """External inputs as typed run config; values no config type can hold stay fixed."""
    schema: dict[str, dg.Field] = {}
    fixed: dict[str, Any] = {}
    for name, input_node in dataflow.inputs.items():
        if name in upstream_inputs or name == partition_input:
            continue
        config_type = _config_type(input_node.type)
        if config_type is not None:
            schema[name] = _field(input_node, config_type)
        elif input_node.has_default:
            fixed[name] = input_node.default
        else:
            readers = ", ".join(f"'{c}'" for c in input_node.consumers)
            raise DataflowError(
                f"Node {readers} depends on '{name}' ({getattr(input_node.type, '__name__', input_node.type)}), "
                "which no function produces and which cannot come from run config. Fix: add a "
                f"function named '{name}', correct the parameter name, pass '{name}' in "
                "hamilton_assets(config=...), or list the asset it names in upstream_assets."
            )
    return schema, fixed


def _config_type(tp: Any) -> Any:
    if tp in CONFIG_TYPES:
        return CONFIG_TYPES[tp]
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        inner = _config_type(args[0])
        return dg.Noneable(inner) if inner is not None else None
    if origin is list and len(args) == 1 and args[0] in CONFIG_TYPES:
        return [CONFIG_TYPES[args[0]]]
    if tp in (list, dict, typing.Any) or origin is dict:
        return dg.Any
    return None


def _field(input_node: InputNode, config_type: Any) -> dg.Field:
    description = "Hamilton input of " + ", ".join(input_node.consumers)
    if input_node.has_default:
        return dg.Field(config_type, default_value=input_node.default, description=description)
    return dg.Field(config_type, is_required=True, description=description)


# Asset groups: one step per group. Independent groups then run in parallel under the multiprocess
# or Celery executor, and a group loads what other groups computed from the value store. A group is
# one step, so groups must not depend on each other in a circle: Dagster would then run one group
# as two steps, and the second would silently ignore the run config given to the first.


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
