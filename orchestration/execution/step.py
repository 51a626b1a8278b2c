"""One step: Hamilton runs in a worker thread, and the step's own thread stores and reports each
asset as soon as its node finishes, while it tells people and observers how far it is."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from orchestration import column_lineage
from orchestration.errors import MissingUpstreamError, StorageError
from orchestration.execution import retries
from orchestration.execution.checks import as_outcomes, check_result, merged_over_partitions
from orchestration.execution.hamilton_stream import NodeResult
from orchestration.monitoring.callbacks import CallbackThread
from orchestration.monitoring.live_nodes import NodeWatch
from orchestration.monitoring.progress import StepProgress, usual_durations
from orchestration.observers import Materialized, ObserverGroup, StepInfo, StepObserver
from orchestration.storage.formats import DEFAULT_FORMATS
from orchestration.storage.metadata import materialization_metadata
from orchestration.storage.store import ValueStore
from orchestration.values import row_count

if TYPE_CHECKING:
    from orchestration.execution.plan import ExecutionPlan
    from orchestration.execution.runner import StepRunner
    from orchestration.runtime import RuntimeSettings

_DONE = object()
REPORT_BATCH_MAX = 100  # results stored before the step reports them (only those already waiting)
HAMILTON_JOIN_S = 1.0  # how long a stopping step waits for Hamilton's thread to leave its node


@dataclass(frozen=True)
class _Started:
    """Hamilton's thread is about to run the first node of `asset` (at `time.monotonic()`)."""

    asset: str
    at: float


class Step:
    """The state of one step: what was loaded or stored where, which columns values have, and
    where the step is (progress, running nodes, callbacks being delivered)."""

    def __init__(self, runner: StepRunner, context, plan: ExecutionPlan, settings: RuntimeSettings):
        self.runner = runner
        self.context = context
        self.plan = plan
        self.store = ValueStore(settings.store_location, (*runner.options.formats, *DEFAULT_FORMATS))
        self.partitions = _partitions(context)
        self.partition = self.partitions[0]
        self.info = StepInfo(  # what observers are given (a copy per partition in a range run)
            run_id=context.run.run_id,
            name=context.op_execution_context.op_def.name,
            dataflow=runner.dataflow,
            assets=plan.assets,
            keys=runner.key_strings,
            translator=runner.translator,
            settings=settings,
            partitions=tuple(p for p in self.partitions if p is not None),
            partition=self.partition if len(self.partitions) == 1 else None,
            will_retry=retries.will_retry(context),
            log=context.log,
            context=context,
        )
        self.observers = ObserverGroup(runner.observers)
        self.paths: dict[str, str] = {}  # asset or upstream input -> stored file
        self.columns: dict[str, list[str] | None] = {}
        self.pending_checks: dict[str, list[dg.AssetCheckResult]] = {}
        self.wrote = False
        self.settings = settings.progress
        units = [self._label(name, p) for p in self.partitions for name in plan.assets]
        usual = usual_durations(context, [runner.keys[name] for name in plan.assets])
        self.progress = StepProgress(
            units,
            {
                self._label(n, p): usual[runner.keys[n]]
                for p in self.partitions
                for n in plan.assets
                if runner.keys[n] in usual
            },
        )
        self.watch = NodeWatch(self.settings)
        self.callbacks = CallbackThread(runner.options.progress_callbacks, f"progress-{runner.dataflow.name}")
        self._last_line = (time.monotonic(), 0)  # when the last progress line was logged, at what count
        self._announce()

    def _label(self, name: str, partition: str | None = None) -> str:
        """How an asset is named in progress: its key, and its partition in a range run."""
        key = self.runner.key_strings[name]
        return key if len(self.partitions) == 1 else f"{key} [{partition or self.partition}]"

    def _announce(self) -> None:
        """One line per step: what it computes, and what percent and ETA are weighted by."""
        attempt = retries.attempt_note(self.context)
        if attempt:
            self.context.log.warning(attempt)
            self.callbacks.send(self.runner.dataflow.name, 0.0, attempt)
        progress = self.progress
        self.context.log.info(
            f"Computing {progress.total} asset(s) of {self.runner.dataflow.name}; progress and ETA "
            f"weighted by {progress.basis}. Nodes running longer than {self.settings.live_after_s:g} s "
            "are named here while they run."
        )

    def notify(self, hook: Callable[..., None], *args: Any) -> None:
        self.observers.notify(hook, self.info, *args)

    def close(self) -> None:
        """Ends the step's side work: callbacks delivered (bounded), the store's values durable."""
        self.callbacks.close(self.settings.callback_wait_s)
        self._report_callback_warnings()
        if self.wrote:
            self.store.sync()

    def execute(self) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        if len(self.partitions) == 1:
            yield from self._execute_partition()
        else:
            yield from self._execute_range()

    def _execute_range(self) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """A backfill in one run: each partition in turn, then one result per asset covering the
        range (per-partition metadata is attached with `add_asset_metadata`)."""
        checks: dict[dg.AssetKey | None, dict[str | None, list[dg.AssetCheckResult]]] = {}
        for partition in self.partitions:
            self.partition = partition
            self.info = dataclasses.replace(self.info, partition=partition)
            self.paths.clear()
            self.columns.clear()
            self.pending_checks.clear()
            try:
                for result in self._execute_partition():
                    if isinstance(result, dg.AssetCheckResult):  # a failed node's checks; the step fails next
                        yield result
                        continue
                    for check in result.check_results or ():
                        checks.setdefault(result.asset_key, {}).setdefault(check.check_name, []).append(check)
            except dg.Failure as failure:
                raise dg.Failure(
                    description=f"Partition {partition} of {self.partitions[0]}...{self.partitions[-1]}: "
                    f"{failure.description}\n\nPartitions before it are stored but not recorded as "
                    "materialized; re-run the range (or the failed partitions) to record them.",
                    metadata=failure.metadata,
                ) from failure
        for name in self.plan.assets:
            key = self.runner.keys[name]
            merged = [
                merged_over_partitions(results, self.info.partitions)
                for results in checks.get(key, {}).values()
            ]
            yield dg.MaterializeResult(asset_key=key, check_results=merged or None)

    def _execute_partition(self) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        runner = self.runner
        try:
            overrides = {name: self._load(name, runner.keys[name]) for name in self.plan.loads}
            inputs = self._inputs()
        except (MissingUpstreamError, StorageError) as error:
            raise dg.Failure(description=str(error)) from error
        if self.plan.loads:
            self.context.log.info(
                "Loaded from storage instead of recomputing: "
                + ", ".join(runner.keys[name].to_user_string() for name in self.plan.loads)
            )
        yield from self._stream(overrides, inputs)

    def _load(self, name: str, key: dg.AssetKey) -> Any:
        value, path = self.store.load(key, self.partition)
        self.paths[name] = str(path)
        self.columns[name] = column_lineage.output_columns(name, value)
        return value

    def _inputs(self) -> dict[str, Any]:
        config = self.context.op_execution_context.op_config or {}
        inputs = {}
        for name in self.plan.inputs:
            if name == self.runner.options.partition_input:
                inputs[name] = self.partition
            elif name in self.runner.upstream_inputs:
                inputs[name] = self._load(name, self.runner.upstream_inputs[name])
            elif name in config:
                inputs[name] = config[name]
            elif name in self.runner.fixed_inputs:
                inputs[name] = self.runner.fixed_inputs[name]
        return inputs

    def _stream(self, overrides: dict[str, Any], inputs: dict[str, Any]):
        """Runs Hamilton in a worker thread; this thread stores and reports each result as it comes,
        and, while it waits, names the nodes that have been running for a while."""
        runner, dataflow = self.runner, self.runner.dataflow
        results: queue.SimpleQueue = queue.SimpleQueue()
        cancelled = threading.Event()
        wanted = set(self.plan.final_vars)
        started: set[str] = set()

        def on_start(node_name: str) -> None:  # in Hamilton's thread: quick, never blocks
            asset = dataflow.asset_of(node_name)
            if asset in wanted and asset not in started:
                started.add(asset)
                results.put(_Started(asset, time.monotonic()))

        def work() -> None:
            with runner.stream.listen(wanted, results.put, cancelled, on_start):
                try:
                    dataflow.driver.execute(list(self.plan.final_vars), overrides=overrides, inputs=inputs)
                    results.put(_DONE)
                except BaseException as error:  # reported to the step, which raises it
                    results.put(error)

        hamilton = threading.Thread(target=work, name=f"hamilton-{dataflow.name}", daemon=True)
        hamilton.start()
        failed: NodeResult | None = None
        try:
            while True:
                try:
                    first = results.get(timeout=self.watch.next_wait_s())
                except queue.Empty:
                    self._show_running()
                    continue
                # Every result already waiting is stored first, then reported together, so that
                # observers make what they must durable for all of them at once (`before_report`).
                reports: list[dg.MaterializeResult | dg.AssetCheckResult] = []
                end = stop = None
                try:
                    for item in _waiting(results, first):
                        if item is _DONE or isinstance(item, BaseException):
                            end = item
                        elif isinstance(item, _Started):
                            self._started(item)
                        elif item.error is not None:
                            failed = failed or item
                            asset = dataflow.asset_of(item.node_name)
                            if asset in wanted:
                                self._failed(asset, item)
                            for checks in self.pending_checks.values():
                                reports += checks
                            self.pending_checks.clear()
                        elif (check := dataflow.checks.get(item.node_name)) is not None:
                            self.pending_checks.setdefault(check.asset, []).append(
                                check_result(check, runner.keys[check.asset], item.result)
                            )
                        else:
                            reports.append(self._materialize(item))
                except dg.Failure as failure:  # a value that cannot be stored: report the others first
                    stop = failure
                self.notify(StepObserver.before_report)
                yield from reports
                if stop is not None:
                    raise stop
                if end is _DONE:
                    break
                if isinstance(end, BaseException):
                    raise runner.failure(failed, end)
        finally:
            cancelled.set()  # Hamilton stops before its next node
            self._join(hamilton, results)

    def _join(self, hamilton: threading.Thread, results: queue.SimpleQueue) -> None:
        """Waits briefly for Hamilton's thread; one still inside a node (the step failed or was
        terminated meanwhile) cannot be stopped, so it is left to end with the process, once said."""
        hamilton.join(HAMILTON_JOIN_S)
        if not hamilton.is_alive():
            return
        running = {node.asset for node in self.watch.running()}
        while True:  # what Hamilton reported since the step stopped reading
            try:
                item = results.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Started):
                running.add(item.asset)
            elif isinstance(item, NodeResult):
                running.discard(self.runner.dataflow.asset_of(item.node_name))
        named = ", ".join(sorted(self.runner.key_strings[asset] for asset in running if asset)) or "a node"
        self.context.log.warning(
            f"Hamilton is still running {named} after the step stopped waiting for it "
            f"({HAMILTON_JOIN_S:g} s); its thread is left to end with this process."
        )

    def _started(self, item: _Started) -> None:
        label = self._label(item.asset)
        self.watch.started(label, item.asset, item.at)
        if self.callbacks.callbacks:
            self.callbacks.send(label, self.progress.percent, self.progress.starting(label))
        self.notify(StepObserver.asset_started, item.asset)

    def _show_running(self) -> None:
        """Names each node past the threshold, then again on each heartbeat."""
        self._report_callback_warnings()
        for node, running_s in self.watch.due():
            line = self.progress.running(node.unit, running_s)
            self.context.log.info(line)
            self.callbacks.send(node.unit, self.progress.percent, line)
            self.notify(StepObserver.asset_running, node.asset, running_s)

    def _heartbeat(self) -> None:
        """While quick nodes finish, one progress line per heartbeat interval: a long run of quick
        nodes shows in the run log without a line per node."""
        when, count = self._last_line
        now = time.monotonic()
        if now - when >= self.settings.heartbeat_s:
            if self.progress.done > count:
                self.context.log.info(self.progress.summary())
            self._last_line = (now, self.progress.done)

    def _failed(self, asset: str, item: NodeResult) -> None:
        label = self._label(asset)
        self.watch.ended(label)
        cause = self.runner.describe_failure(item)
        message = retries.retry_announcement(self.context, cause) if self.info.will_retry else cause
        if self.info.will_retry:
            self.context.log.warning(message)
        self.callbacks.send(label, self.progress.percent, message)
        self.notify(StepObserver.asset_failed, asset, item.error)

    def _report_callback_warnings(self) -> None:
        for warning in self.callbacks.warnings():
            self.context.log.warning(warning)

    def _materialize(self, item: NodeResult) -> dg.MaterializeResult:
        runner, name = self.runner, item.node_name
        key = runner.keys[name]
        try:
            stored = self.store.write(key, item.result, self.partition, name=name)
        except StorageError as error:
            raise dg.Failure(description=f"Node '{name}': {error}") from error
        self.wrote = True
        self.paths[name] = str(stored.path)
        self.columns[name] = column_lineage.output_columns(name, item.result)
        lineage = column_lineage.derive(runner.dataflow, name, item.result, self.columns.get)
        metadata = materialization_metadata(item.result, stored, item.duration_s, name)
        if lineage:
            metadata["dagster/column_lineage"] = column_lineage.as_dagster_metadata(
                lineage, runner.keys.__getitem__
            )
        label = self._label(name)
        line = self.progress.finished(label, item.duration_s, row_count(item.result))
        metadata["progress"] = line
        self.callbacks.send(label, self.progress.percent, line)
        watched = self.watch.ended(label)
        if watched is not None and watched.shown:  # a person was told it runs: say it ended
            self.context.log.info(line)
        else:
            self._heartbeat()
        if len(self.partitions) > 1:
            self.context.add_asset_metadata(metadata, asset_key=key, partition_key=self.partition)
        checks = self.pending_checks.pop(name, [])
        asset = runner.dataflow.assets[name]
        upstream = {n: self.paths[n] for n in (*asset.upstream, *asset.inputs) if n in self.paths}
        self.notify(
            StepObserver.asset_materialized,
            name,
            Materialized(item.result, stored, item.duration_s, lineage, as_outcomes(checks), upstream),
        )
        return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks or None)


def _waiting(results: queue.SimpleQueue, first: Any, limit: int = REPORT_BATCH_MAX) -> Iterator[Any]:
    """`first`, then whatever else is already in the queue (at most `limit` items in all), up to
    the end of the stream or its error."""
    item, count = first, 1
    while True:
        yield item
        if item is _DONE or isinstance(item, BaseException) or count >= limit:
            return
        try:
            item = results.get_nowait()
        except queue.Empty:
            return
        count += 1


def _partitions(context) -> list[str | None]:
    """The partitions a step computes: none, one, or a range (a single-run backfill)."""
    if context.has_partition_key:
        return [context.partition_key]
    if context.has_partition_key_range:
        return list(context.partition_keys)
    return [None]
