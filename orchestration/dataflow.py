"""A Hamilton dataflow seen as assets.

Hamilton decorators expand one function into several nodes. Users think in functions, so this
module sorts the nodes into what Dagster should show:

- assets: one per user function (or per generated output of `@parameterize` and friends);
- columns: `@extract_columns` / `@extract_fields` children, which belong to their parent asset;
- checks: `@check_output` validator nodes, which become asset checks on the checked asset;
- internals: decorator plumbing such as `<name>_raw`, never shown;
- inputs: external inputs, which become run config.
"""

from __future__ import annotations

import inspect
import logging
import sys
import typing
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from hamilton import driver, graph_types
from hamilton.function_modifiers.validation import (
    DATA_VALIDATOR_ORIGINAL_OUTPUT_TAG,
    IS_DATA_VALIDATOR_TAG,
)

from orchestration.errors import DataflowError
from orchestration.heap import paused_gc

# Hamilton executes a chain recursively, a few Python frames per node; deeper chains would overflow
# the interpreter's stack mid-run, so they are refused at load time instead.
FRAMES_PER_NODE = 1
RESERVED_FRAMES = 150
NO_DEFAULT = inspect.Parameter.empty


class _HideHamiltonBanner(logging.Filter):
    """Hamilton logs a chat invitation on every error; it only hides the real message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "slack" not in str(record.msg).lower()


def _hide_hamilton_banner() -> None:
    """Installed when the first dataflow is built, not on import: importing changes no logger."""
    hamilton_log = logging.getLogger("hamilton.driver")
    if not any(isinstance(f, _HideHamiltonBanner) for f in hamilton_log.filters):
        hamilton_log.addFilter(_HideHamiltonBanner())


@dataclass(frozen=True)
class CheckNode:
    """A `@check_output` validator node, shown as a Dagster asset check."""

    node_name: str
    asset: str
    check_name: str
    blocking: bool
    description: str | None


@dataclass(frozen=True)
class InputNode:
    """An external input: no function produces it, so it comes from run config or upstream."""

    name: str
    type: type
    default: typing.Any = NO_DEFAULT
    consumers: tuple[str, ...] = ()

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


@dataclass(frozen=True)
class AssetNode:
    """A Hamilton node that becomes a Dagster asset."""

    node: graph_types.HamiltonNode
    upstream: tuple[str, ...]
    inputs: tuple[str, ...]
    columns: tuple[str, ...] = ()
    checks: tuple[CheckNode, ...] = ()

    @property
    def name(self) -> str:
        return self.node.name


def default_name(modules: Sequence[ModuleType]) -> str:
    """A dataflow's name when none is given: its modules' short names, joined by `__`."""
    return "__".join(m.__name__.rsplit(".", 1)[-1] for m in modules)


class Dataflow:
    """One Hamilton driver over some modules and config, classified for Dagster."""

    def __init__(
        self,
        modules: Sequence[ModuleType],
        config: Mapping[str, typing.Any] | None = None,
        name: str | None = None,
        adapters: Sequence[typing.Any] = (),
    ):
        if not modules:
            raise DataflowError("hamilton_assets() needs at least one Hamilton module.")
        self.modules = tuple(modules)
        self.config = dict(config or {})
        self.name = name or default_name(self.modules)
        _hide_hamilton_banner()
        with paused_gc():
            self.driver = _build_driver(self.modules, self.config, adapters)
            self.nodes: dict[str, graph_types.HamiltonNode] = {
                n.name: n for n in self.driver.list_available_variables()
            }
            # Hamilton feeds config values to inputs of the same name and then refuses them at run
            # time; such values are defaults of run config instead, so they are kept out of
            # Hamilton's config (which takes a second build: only then is the graph known).
            input_defaults = _read_inputs(self.config, self.nodes)
            if input_defaults:
                driver_config = {k: v for k, v in self.config.items() if k not in input_defaults}
                self.driver = _build_driver(self.modules, driver_config, adapters)
                self.nodes = {n.name: n for n in self.driver.list_available_variables()}
            self.order = _topological_order(self.nodes)
            _check_depth(self.nodes, self.order)
            self._classify()

    # -- classification -------------------------------------------------------------------------

    def _classify(self) -> None:
        nodes = self.nodes
        checks: dict[str, CheckNode] = {}
        families: dict[int, list[str]] = defaultdict(list)
        for name in self.order:
            node = nodes[name]
            if node.is_external_input:
                continue
            if node.tags.get(IS_DATA_VALIDATOR_TAG):
                checks[name] = self._check_node(node)
                continue
            families[id(node.originating_functions[0])].append(name)

        assets: set[str] = set()
        parent_of: dict[str, str] = {}
        owner: dict[str, str] = {name: check.asset for name, check in checks.items()}
        for members in families.values():
            fn = nodes[members[0]].originating_functions[0]
            primary = _primary_node(fn, members)
            if primary is not None:
                assets.add(primary)
                for name in members:
                    owner[name] = primary
                    if name != primary and nodes[name].required_dependencies == {primary}:
                        parent_of[name] = primary
                continue
            member_set = set(members)
            consumed = {d for m in members for d in dependencies(nodes[m]) if d in member_set}
            assets.update(m for m in members if m not in consumed)
            owner.update((m, m) for m in members if m not in consumed)

        # What each node stands for upstream: assets and columns stand for their asset; internal
        # and check nodes for whatever they read. Computed in topological order, no recursion.
        stands_for: dict[str, tuple[set[str], set[str]]] = {}  # internal and check nodes only

        def reached(name: str) -> tuple[set[str], set[str]]:
            """The assets and the external inputs that `name` reads, through internal nodes."""
            upstream: set[str] = set()
            inputs: set[str] = set()
            for dep in dependencies(nodes[name]):
                if dep in assets:
                    upstream.add(dep)
                elif dep in parent_of:
                    upstream.add(parent_of[dep])
                elif nodes[dep].is_external_input:
                    inputs.add(dep)
                else:
                    upstream |= stands_for[dep][0]
                    inputs |= stands_for[dep][1]
            return upstream, inputs

        for name in self.order:
            if name not in assets and name not in parent_of and not nodes[name].is_external_input:
                stands_for[name] = reached(name)

        checks_by_asset: dict[str, list[CheckNode]] = defaultdict(list)
        for check in checks.values():
            checks_by_asset[check.asset].append(check)
        columns_by_asset: dict[str, list[str]] = defaultdict(list)
        for child, parent in parent_of.items():
            columns_by_asset[parent].append(child)

        position = {name: i for i, name in enumerate(self.order)}
        self.assets: dict[str, AssetNode] = {}
        for name in self.order:
            if name not in assets:
                continue
            upstream, inputs = reached(name)
            self.assets[name] = AssetNode(
                node=nodes[name],
                upstream=tuple(sorted(upstream - {name}, key=position.__getitem__)),
                inputs=tuple(sorted(inputs)),
                columns=tuple(columns_by_asset.get(name, ())),
                checks=tuple(checks_by_asset.get(name, ())),
            )
        self.checks = checks
        self.parent_of = parent_of
        self.owner = owner
        self.inputs = self._input_nodes()

    def _check_node(self, node: graph_types.HamiltonNode) -> CheckNode:
        asset = node.tags[DATA_VALIDATOR_ORIGINAL_OUTPUT_TAG]
        validator = _validator_of(self.driver, node.name)
        importance = getattr(getattr(validator, "importance", None), "value", "warn")
        return CheckNode(
            node_name=node.name,
            asset=asset,
            check_name=node.name[len(asset) + 1 :] or node.name,
            blocking=importance == "fail",
            description=node.documentation or None,
        )

    def _input_nodes(self) -> dict[str, InputNode]:
        consumers: dict[str, list[str]] = defaultdict(list)
        for name in self.order:
            for dep in dependencies(self.nodes[name]):
                consumers[dep].append(name)
        inputs: dict[str, InputNode] = {}
        for name in self.order:
            node = self.nodes[name]
            if not node.is_external_input or not consumers[name]:
                continue  # config keys show up as inputs that nothing reads
            default = self.config.get(name, NO_DEFAULT)
            for consumer in consumers[name]:
                if default is not NO_DEFAULT:
                    break
                default = self.nodes[consumer].optional_dependencies_default_values.get(name, NO_DEFAULT)
            inputs[name] = InputNode(
                name=name, type=node.type, default=default, consumers=tuple(consumers[name])
            )
        return inputs

    # -- queries used at run time ---------------------------------------------------------------

    def asset_of(self, node_name: str) -> str | None:
        """The asset a node works for: itself, its parent, the checked asset, or its function's."""
        return self.owner.get(node_name)

    def needed_by(self, outputs: typing.Iterable[str], stop_at: typing.Container[str] = ()) -> set[str]:
        """The outputs and every node they need, not walking past nodes in `stop_at` (those are
        included, what they need is not): what Hamilton runs when `stop_at` are overrides."""
        needed = set(outputs)
        pending = list(needed)
        while pending:
            name = pending.pop()
            if name in stop_at:
                continue
            for dep in dependencies(self.nodes[name]):
                if dep not in needed:
                    needed.add(dep)
                    pending.append(dep)
        return needed


def _build_driver(
    modules: Sequence[ModuleType], config: Mapping[str, typing.Any], adapters: Sequence[typing.Any]
) -> driver.Driver:
    names = ", ".join(m.__name__ for m in modules)
    try:
        return (
            driver.Builder().with_modules(*modules).with_config(dict(config)).with_adapters(*adapters).build()
        )
    except Exception as error:  # Hamilton raises bare ValueError/TypeError for graph problems
        raise DataflowError(
            f"Hamilton could not build a dataflow from {names}: {error}\n"
            "Fix: make each function name unique across the modules, and give every parameter the "
            "type its producer returns (Hamilton matches dependencies by parameter name and type)."
        ) from error


def _primary_node(fn: typing.Callable, members: Sequence[str]) -> str | None:
    """The node named after its function (`raw__daily` under `@config.when` is named `raw`)."""
    fn_name = fn.__name__
    for candidate in (fn_name, fn_name.split("__", 1)[0]):
        if candidate in members:
            return candidate
    return None


def dependencies(node: graph_types.HamiltonNode) -> set[str]:
    return node.required_dependencies | node.optional_dependencies


def _read_inputs(names: typing.Iterable[str], nodes: Mapping[str, graph_types.HamiltonNode]) -> set[str]:
    """Those of `names` that are external inputs some node reads."""
    inputs = {name for name in names if name in nodes and nodes[name].is_external_input}
    if not inputs:
        return inputs
    return inputs & set().union(*(dependencies(node) for node in nodes.values()))


def _validator_of(dr: driver.Driver, node_name: str):
    """The DataValidator behind a `@check_output` node (Hamilton binds it as a default argument)."""
    fn = dr.graph.nodes[node_name].callable
    parameter = inspect.signature(fn).parameters.get("validator_to_call")
    return None if parameter is None else parameter.default


def _topological_order(nodes: Mapping[str, graph_types.HamiltonNode]) -> list[str]:
    """Kahn's algorithm, stable by name; iterative so very deep chains cannot overflow here."""
    children: dict[str, list[str]] = defaultdict(list)
    pending = {}
    for name, node in nodes.items():
        deps = [d for d in dependencies(node) if d in nodes]
        pending[name] = len(deps)
        for dep in deps:
            children[dep].append(name)
    ready = deque(sorted(n for n, count in pending.items() if count == 0))
    order = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for child in children[name]:
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    if len(order) != len(nodes):
        stuck = sorted(set(nodes) - set(order))
        raise DataflowError(f"The dataflow has a dependency cycle through: {', '.join(stuck[:10])}.")
    return order


def max_chain_depth() -> int:
    """The longest dependency chain Hamilton can execute under the current recursion limit."""
    return (sys.getrecursionlimit() - RESERVED_FRAMES) // FRAMES_PER_NODE


def _check_depth(nodes: Mapping[str, graph_types.HamiltonNode], order: Sequence[str]) -> None:
    depth: dict[str, int] = {}
    deepest = None
    for name in order:
        depth[name] = 1 + max((depth[d] for d in dependencies(nodes[name]) if d in depth), default=0)
        if deepest is None or depth[name] > depth[deepest]:
            deepest = name
    limit = max_chain_depth()
    if deepest is not None and depth[deepest] > limit:
        raise DataflowError(
            f"Node '{deepest}' sits at the end of a dependency chain {depth[deepest]} nodes deep; "
            f"Hamilton executes chains recursively and overflows Python's stack beyond about {limit} "
            "nodes. Fix: merge steps of the chain into fewer functions, or split the dataflow into "
            "several modules passed to separate hamilton_assets() calls."
        )
