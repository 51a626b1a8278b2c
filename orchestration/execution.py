"""Running a selection of a dataflow's assets inside one Dagster step.

Only the Hamilton nodes the selection needs execute: upstream assets outside the selection are
loaded from the value store and handed to Hamilton as overrides, so they are never recomputed.
Hamilton runs in a worker thread; each asset is stored and reported as soon as its node finishes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import traceback
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from orchestration import column_lineage
from orchestration.dataflow import Dataflow, dependencies
from orchestration.errors import MissingUpstreamError, StorageError
from orchestration.hamilton_stream import NodeResult, ResultStream
from orchestration.metadata import materialization_metadata, row_count
from orchestration.progress import AssetProgress, ProgressCallback
from orchestration.storage import StoredValue, ValueStore

_DONE = object()
logger = logging.getLogger(__name__)


class StepObserver:
    """Told how a step goes, as it goes (lineage, metrics). Must not block; errors are logged."""

    def step_started(self, context, runner: StepRunner, plan: ExecutionPlan) -> None: ...

    def asset_started(self, context, asset: str) -> None: ...

    def asset_materialized(self, context, asset: str, materialized: Materialized) -> None: ...

    def asset_failed(self, context, asset: str, error: BaseException) -> None: ...

    def step_finished(self, context, success: bool) -> None: ...


@dataclass(frozen=True)
class Materialized:
    """What an observer learns about a stored asset value."""

    value: Any
    stored: StoredValue
    duration_s: float
    lineage: Mapping[str, list[column_lineage.ColumnSource]]
    check_results: Sequence[dg.AssetCheckResult]


@dataclass(frozen=True)
class ExecutionPlan:
    """What one step computes, loads and reads from run config."""

    final_vars: tuple[str, ...]
    loads: tuple[str, ...]
    inputs: tuple[str, ...]
    assets: tuple[str, ...]


def plan_selection(dataflow: Dataflow, selected: Sequence[str]) -> ExecutionPlan:
    """Walks upstream from the selection, stopping at assets that are not selected."""
    chosen = set(selected)
    final_vars = [name for name in dataflow.order if name in chosen]
    final_vars += [check.node_name for name in final_vars for check in dataflow.assets[name].checks]
    loads: set[str] = set()
    inputs: set[str] = set()
    seen = set(final_vars)
    pending = deque(final_vars)
    while pending:
        for dep in dependencies(dataflow.nodes[pending.popleft()]):
            if dep in seen:
                continue
            seen.add(dep)
            if dep in dataflow.assets and dep not in chosen:
                loads.add(dep)
            elif dataflow.nodes[dep].is_external_input:
                inputs.add(dep)
            else:
                pending.append(dep)
    order = {name: i for i, name in enumerate(dataflow.order)}
    return ExecutionPlan(
        final_vars=tuple(final_vars),
        loads=tuple(sorted(loads, key=order.__getitem__)),
        inputs=tuple(sorted(inputs)),
        assets=tuple(name for name in final_vars if name in chosen),
    )


class StepRunner:
    """Executes selections of one dataflow; built once per `hamilton_assets` call."""

    def __init__(
        self,
        dataflow: Dataflow,
        stream: ResultStream,
        keys: Mapping[str, dg.AssetKey],
        upstream_inputs: Mapping[str, dg.AssetKey],
        fixed_inputs: Mapping[str, Any],
        store: ValueStore | None,
        progress_callbacks: Sequence[ProgressCallback],
        translator=None,
    ):
        self.dataflow = dataflow
        self.translator = translator
        self.stream = stream
        self.keys = keys
        self.nodes_by_key = {key: name for name, key in keys.items()}
        self.upstream_inputs = upstream_inputs
        self.fixed_inputs = fixed_inputs
        self.store = store
        self.progress_callbacks = progress_callbacks
        self.observers: list[StepObserver] = []

    def store_for_run(self) -> ValueStore:
        from orchestration.paths import assets_dir

        return self.store or ValueStore(assets_dir())

    def _notify(self, method: str, *args) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:  # an observer must never break a run
                logger.warning("%s.%s failed", type(observer).__name__, method, exc_info=True)

    def run(self, context) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        store = self.store_for_run()
        partition = context.partition_key if context.has_partition_key else None
        selected = [self.nodes_by_key[key] for key in context.selected_asset_keys]
        plan = plan_selection(self.dataflow, selected)
        self._notify("step_started", context, self, plan)
        success = False
        try:
            try:
                overrides = {name: store.read(self.keys[name], partition) for name in plan.loads}
                inputs = self._inputs(plan, context.op_execution_context.op_config or {}, store, partition)
            except (MissingUpstreamError, StorageError) as error:
                raise dg.Failure(description=str(error)) from error
            if plan.loads:
                context.log.info(
                    "Loaded from storage instead of recomputing: "
                    + ", ".join(self.keys[name].to_user_string() for name in plan.loads)
                )
            columns = {name: column_lineage.output_columns(name, value) for name, value in overrides.items()}
            progress = AssetProgress(len(plan.assets), self.progress_callbacks)
            yield from self._stream(context, plan, overrides, inputs, store, partition, progress, columns)
            success = True
        finally:
            self._notify("step_finished", context, success)

    def _inputs(
        self, plan: ExecutionPlan, config: Mapping[str, Any], store: ValueStore, partition: str | None
    ) -> dict[str, Any]:
        inputs = {}
        for name in plan.inputs:
            if name in self.upstream_inputs:
                inputs[name] = store.read(self.upstream_inputs[name], partition)
            elif name in config:
                inputs[name] = config[name]
            elif name in self.fixed_inputs:
                inputs[name] = self.fixed_inputs[name]
        return inputs

    def _stream(self, context, plan, overrides, inputs, store, partition, progress, columns):
        results: queue.SimpleQueue = queue.SimpleQueue()
        cancelled = threading.Event()
        wanted = set(plan.final_vars)

        started: set[str] = set()

        def on_start(node_name: str) -> None:
            asset = self.dataflow.asset_of(node_name)
            if asset in wanted and asset not in started:
                started.add(asset)
                self._notify("asset_started", context, asset)

        def work() -> None:
            with self.stream.listen(wanted, results.put, cancelled, on_start):
                try:
                    self.dataflow.driver.execute(
                        list(plan.final_vars), overrides=overrides, inputs=inputs
                    )
                    results.put(_DONE)
                except BaseException as error:  # reported to the step, which raises it
                    results.put(error)

        worker = threading.Thread(target=work, name=f"hamilton-{self.dataflow.name}", daemon=True)
        worker.start()
        pending_checks: dict[str, list[dg.AssetCheckResult]] = {}
        failed: NodeResult | None = None
        try:
            while True:
                item = results.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise self._failure(failed, item)
                if item.error is not None:
                    failed = failed or item
                    asset = self.dataflow.asset_of(item.node_name)
                    if asset in wanted:
                        self._notify("asset_failed", context, asset, item.error)
                    for checks in pending_checks.values():
                        yield from checks
                    pending_checks.clear()
                    continue
                check = self.dataflow.checks.get(item.node_name)
                if check is not None:
                    pending_checks.setdefault(check.asset, []).append(
                        self._check_result(check, item.result)
                    )
                    continue
                yield self._materialize(context, item, store, partition, progress, pending_checks, columns)
        finally:
            cancelled.set()

    def _materialize(self, context, item: NodeResult, store, partition, progress, pending_checks, columns):
        name = item.node_name
        key = self.keys[name]
        try:
            stored = store.write(key, item.result, partition, name=name)
        except StorageError as error:
            raise dg.Failure(description=f"Node '{name}': {error}") from error
        columns[name] = column_lineage.output_columns(name, item.result)
        lineage = column_lineage.derive(self.dataflow, name, item.result, columns.get)
        metadata = materialization_metadata(item.result, stored, item.duration_s, name)
        if lineage:
            metadata["dagster/column_lineage"] = column_lineage.as_dagster_metadata(
                lineage, self.keys.__getitem__
            )
        context.log.info(
            progress.advance(key.to_user_string(), item.duration_s, row_count(item.result))
        )
        checks = pending_checks.pop(name, [])
        self._notify(
            "asset_materialized", context, name,
            Materialized(item.result, stored, item.duration_s, lineage, checks),
        )
        return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks or None)

    def _check_result(self, check, result) -> dg.AssetCheckResult:
        diagnostics = getattr(result, "diagnostics", None) or {}
        return dg.AssetCheckResult(
            asset_key=self.keys[check.asset],
            check_name=check.check_name,
            passed=bool(getattr(result, "passes", False)),
            severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
            description=getattr(result, "message", None),
            metadata={"diagnostics": dg.MetadataValue.json(json.loads(json.dumps(diagnostics, default=str)))},
        )

    def _failure(self, failed: NodeResult | None, error: BaseException) -> dg.Failure:
        if failed is None:
            return dg.Failure(
                description=f"Hamilton could not run dataflow '{self.dataflow.name}': "
                f"{type(error).__name__}: {error}",
                metadata={"traceback": dg.MetadataValue.text(_traceback(error))},
            )
        node_error = failed.error
        asset = self.dataflow.asset_of(failed.node_name)
        where = f" (asset {self.keys[asset].to_user_string()})" if asset else ""
        text = _traceback(node_error)
        return dg.Failure(
            description=f"Hamilton node '{failed.node_name}'{where} failed: "
            f"{type(node_error).__name__}: {node_error}\n\n{text}",
            metadata={
                "node": failed.node_name,
                "traceback": dg.MetadataValue.text(text),
            },
        )


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()
