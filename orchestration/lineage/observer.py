"""Asset-level OpenLineage events from inside a Hamilton step, as a step observer.

A node's START carries the time it started but is spooled with its COMPLETE (or FAIL), in one
commit at `before_report`, before Dagster records the materialization; only a node that runs past
`ProgressSettings.live_after_s` has its START spooled while it runs, so a crash or a cancel can
still end it (ABORT, from the run-status sensors in `lineage.runs`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from openlineage.client import event_v2 as ol
from openlineage.client import facet_v2 as facets

from orchestration.lineage import client, events
from orchestration.lineage.delivery import LineageDelivery
from orchestration.lineage.runs import dagster_run, start_run
from orchestration.observers import CheckOutcome, Materialized, StepInfo, StepObserver


@dataclasses.dataclass(frozen=True)
class _ObservedRun:
    """What the observer keeps for a Dagster run while its step runs."""

    run: events.LineageRun
    parts: events.SerializedParts
    target: LineageDelivery  # resolved once a step: `client.delivery()` reads the whole environment
    pending: list = dataclasses.field(default_factory=list)  # asset events spooled at `before_report`


class OpenLineageObserver(StepObserver):
    """Emits asset-level events as a Hamilton step progresses."""

    def __init__(self):
        self._runs: dict[str, _ObservedRun] = {}
        self._jobs: dict[str, events.AssetJob] = {}
        self._started: dict[tuple[str, str], datetime] = {}  # (run, asset job) -> when its node started

    def step_started(self, step: StepInfo) -> None:
        context = step.context
        if context is None or not client.enabled():  # run events need Dagster's run record
            return
        window = context.partition_time_window if _has_time_window(context) else None
        run = dagster_run(context.instance, step.run_id, window)
        self._runs[run.run_id] = _ObservedRun(run, events.SerializedParts(run), client.delivery())
        start_run(run)

    def asset_started(self, step: StepInfo, asset: str) -> None:
        if (observed := self._runs.get(step.run_id)) is not None:
            job = self._job(step, asset)
            self._started[(observed.run.run_id, job.run_key)] = datetime.now(UTC)

    def asset_running(self, step: StepInfo, asset: str, running_s: float) -> None:
        """A long node's START is spooled while it runs (once), so a cancel or crash can end it."""
        if (observed := self._runs.get(step.run_id)) is not None:
            run_id, job = observed.run.run_id, self._job(step, asset)
            start = events.asset_event(
                ol.RunState.START, observed.parts, job, at=self._started.get((run_id, job.run_key))
            )
            client.emit_all([(start, client.once(run_id, "asset-START", job.run_key), job)], observed.target)

    def asset_materialized(self, step: StepInfo, asset: str, materialized: Materialized) -> None:
        if (observed := self._runs.get(step.run_id)) is None:
            return
        upstream = materialized.upstream_paths
        inputs = [events.input_file(path) for path in upstream.values()]
        if not step.dataflow.assets[asset].upstream:
            inputs += [events.input_file(path) for path in events.source_files(materialized.value)]
        output = events.output_file(
            materialized.stored.path,
            materialized.value,
            materialized.stored.size_bytes,
            materialized.lineage,
            upstream,
            assertions=[_assertion(check) for check in materialized.checks],
            column=asset,
        )
        node = events.node_facet(materialized.duration_s, materialized.value)
        self._end(observed, self._job(step, asset), ol.RunState.COMPLETE, inputs, [output], node=node)

    def asset_failed(self, step: StepInfo, asset: str, error: BaseException) -> None:
        if (observed := self._runs.get(step.run_id)) is None or step.will_retry:
            return
        self._end(observed, self._job(step, asset), ol.RunState.FAIL, error=error)

    def before_report(self, step: StepInfo) -> None:
        """The asset events of everything about to be reported, durable in one commit."""
        if (observed := self._runs.get(step.run_id)) is not None and observed.pending:
            client.emit_all(observed.pending, observed.target)
            observed.pending.clear()

    def step_finished(self, step: StepInfo, success: bool) -> None:
        self.before_report(step)  # a failed asset's FAIL, when nothing was reported after it
        if self._runs.pop(step.run_id, None) is not None:
            # No wait for delivery here: the step hook that ends the run drains once for all steps.
            self._started = {k: v for k, v in self._started.items() if k[0] != step.run_id}

    def _end(
        self,
        observed: _ObservedRun,
        job: events.AssetJob,
        state: ol.RunState,
        inputs=(),
        outputs=(),
        error=None,
        node=None,
    ):
        """START (unless spooled while the node ran: its claim makes this one a no-op) and the end
        event, spooled at `before_report`. The START's claim keeps the asset job, to close the
        asset run should its process die; the end's needs nothing."""
        run_id = observed.run.run_id
        end = events.asset_event(state, observed.parts, job, inputs, outputs, error, node=node)
        start = events.start_of(end, self._started.pop((run_id, job.run_key), None))
        observed.pending.extend(
            [
                (start, client.once(run_id, "asset-START", job.run_key), job),
                (end, client.once(run_id, "asset-END", job.run_key), None),
            ]
        )

    def _job(self, step: StepInfo, asset: str) -> events.AssetJob:
        if asset not in self._jobs:  # one observer per dataflow, so the asset name is unique
            self._jobs[asset] = self._describe(step, asset)
        if step.in_partition_range:
            return dataclasses.replace(self._jobs[asset], partition=step.partition)
        return self._jobs[asset]

    @staticmethod
    def _describe(step: StepInfo, asset: str) -> events.AssetJob:
        key = step.keys[asset].replace("/", ".")
        node = step.dataflow.assets[asset].node
        fn = node.originating_functions[0] if node.originating_functions else None
        code = getattr(fn, "__code__", None)
        return events.AssetJob(
            name=f"{step.dataflow.name}.{key}",
            asset_key=key,
            source_file=code.co_filename if code else None,
            source_line=code.co_firstlineno if code else None,
            description=(node.documentation or "").strip() or None,
            owners=tuple(step.translator.get_owners(node)),
            tags=step.translator.get_tags(node),
        )


def _has_time_window(context) -> bool:
    try:
        has_partitions = context.has_partition_key or context.has_partition_key_range
        return has_partitions and context.partition_time_window is not None
    except Exception:  # not a time-window partition
        return False


def _assertion(check: CheckOutcome) -> facets.data_quality_assertions_dataset.Assertion:
    return facets.data_quality_assertions_dataset.Assertion(
        assertion=check.name,
        success=check.passed,
        severity="error" if check.blocking else "warn",
        description=check.description,
    )
