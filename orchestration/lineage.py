"""OpenLineage for every Dagster run and every Hamilton asset, emitted from inside the run.

- Asset events stream from the step as each Hamilton node finishes (`OpenLineageObserver`, a step
  observer). A node's START carries the time it started but is spooled with its COMPLETE (or
  FAIL), in one commit, before Dagster records the materialization; only a node that runs past
  `ProgressSettings.live_after_s` has its START spooled while it runs, so a crash or a cancel can
  still end it (ABORT, from the run-status sensors). Quick nodes cost one spool commit each.
- The run's START comes from its first Hamilton step; its terminal event from the Dagster hook of
  the step that finishes last (`lineage_hooks`), or, for runs that crash or are canceled, from
  run-status sensors. Claims in the spool database make each of these happen exactly once.
- Events go to a durable spool and are delivered in the background (`lineage_delivery`), so a
  slow or dead backend never slows or breaks a run.

Configuration is openlineage-python's own (`openlineage.yml`, `OPENLINEAGE_CONFIG`,
`OPENLINEAGE_URL`/`OPENLINEAGE_API_KEY`, `OPENLINEAGE__TRANSPORT__...`); `OPENLINEAGE_DISABLED=true`
turns it off. With nothing configured, events are written as JSON lines to
`$PIPELINE_DATA_DIR/lineage/events.jsonl`.

`python -m orchestration.lineage_cli status|flush` shows or delivers what is spooled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openlineage.client import event_v2 as ol
from openlineage.client import facet_v2 as facets

from orchestration import lineage_events as events
from orchestration import retries
from orchestration.execution import Materialized, StepObserver
from orchestration.lineage_delivery import LineageDelivery, LineageSpool
from orchestration.paths import data_dir

if TYPE_CHECKING:
    from orchestration.execution import ExecutionPlan, StepRunner

logger = logging.getLogger(__name__)
RUN_END_WAIT_S = 0.5  # at most this long when a run ends, and only while delivery progresses
ALIASES = "OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP"  # openlineage-python writes these itself
_deliveries: dict[tuple, LineageDelivery] = {}


def enabled() -> bool:
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() != "true"


def lineage_dir() -> Path:
    return data_dir() / "lineage"


def configured_transport():
    """The transport openlineage-python's configuration selects; a JSON-lines file if none."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    client_log = logging.getLogger("openlineage.client.client")
    previous = client_log.level
    client_log.setLevel(logging.CRITICAL)  # its fallback messages are ours to decide
    try:
        client = OpenLineageClient()
    except Exception as error:  # a file or variables of the wrong shape
        where = _config_file() or "the OPENLINEAGE_* environment variables"
        raise ValueError(
            f"OpenLineage configuration in {where} is not valid ({type(error).__name__}: {error}). "
            "Fix: a mapping with a 'transport' key, e.g. 'transport: {type: http, url: ...}' "
            "(see docs/lineage.md)."
        ) from None
    finally:
        client_log.setLevel(previous)
    if client.transport.kind != "console":
        return client.transport
    config_file = _config_file()
    if config_file is not None:  # openlineage-python fell back to the console: the file is broken
        import yaml

        try:
            yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"OpenLineage configuration {config_file} cannot be read: {error}") from None
    path = lineage_dir() / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(path), append=True))


def _config_file() -> Path | None:
    candidates = [os.environ.get("OPENLINEAGE_CONFIG"), "openlineage.yml", "~/.openlineage/openlineage.yml"]
    for candidate in candidates:
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    return None


def delivery() -> LineageDelivery:
    """This process's delivery for the current data directory and configuration.

    The transport is resolved here, once, so events spooled under one configuration are never
    sent with another; a broken configuration keeps them spooled and says why.
    """
    settings = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE") and not k.startswith(ALIASES))
    )
    signature = (os.environ.get("PIPELINE_DATA_DIR", ""), settings)
    if signature not in _deliveries:
        folder = lineage_dir()
        try:
            transport = configured_transport()
            factory = lambda: transport  # noqa: E731
        except Exception as error:  # keep events spooled; every delivery attempt reports this
            problem = error
            logger.warning("OpenLineage configuration problem: %s; events stay spooled", error)

            def factory():
                raise problem

        _deliveries[signature] = LineageDelivery(LineageSpool(folder / "spool"), factory)
    return _deliveries[signature]


def emit(event: Any, once_as: str | None = None, job: events.AssetJob | None = None) -> None:
    """Spools an event; `once_as` (see `once`) makes it the only one of that name. The asset job
    is kept with the claim, so a sensor can close the asset run if its process dies."""
    emit_all([(event, once_as, job)])


def emit_all(
    items: list[tuple[Any, str | None, events.AssetJob | None]], target: LineageDelivery | None = None
) -> None:
    """`emit` for several events, durable together in one spool commit (through `target`, this
    process's `delivery()` by default)."""
    (target or delivery()).emit_all([(event, once_as, job.as_json if job else "") for event, once_as, job in items])


def once(run_id: str, what: str, asset_key: str = "") -> str:
    """The claim name that makes an event unique: the run's START/END, or an asset's."""
    return f"{run_id}/{what}-{asset_key}" if asset_key else f"{run_id}/{what}"


def drain(timeout_s: float = RUN_END_WAIT_S) -> None:
    """Gives the background delivery a moment to send, but only while it keeps succeeding."""
    delivery().drain(timeout_s)


def dagster_run(instance, run_id: str, partition_window=None) -> events.DagsterRun:
    """The Dagster run as events describe it, from the instance's run record."""
    record = instance.get_run_record_by_id(run_id)
    run = record.dagster_run
    created = record.create_timestamp
    nominal_start = nominal_end = None
    scheduled = run.tags.get("dagster/scheduled_execution_time")
    if partition_window is not None:
        nominal_start, nominal_end = partition_window.start, partition_window.end
    elif scheduled:
        nominal_start = datetime.fromisoformat(scheduled)
    return events.DagsterRun(
        run_id=run_id,
        job_name=run.job_name,
        created=created if created.tzinfo else created.replace(tzinfo=UTC),
        nominal_start=nominal_start,
        nominal_end=nominal_end,
        tags=dict(run.tags),
    )


def start_run(run: events.DagsterRun) -> None:
    emit(events.run_event(ol.RunState.START, run), once_as=once(run.run_id, "START"))


def finish_run(run: events.DagsterRun, state: ol.RunState, error: BaseException | str | None = None) -> bool:
    """Emits the run's one terminal event, and closes asset runs a crash left open."""
    if not delivery().spool.claim(once(run.run_id, "END")):
        return False
    start_run(run)  # a run that died before its first step still gets its START
    parts, unfinished = events.SerializedParts(run), "the run ended before this asset finished"
    for job in open_asset_runs(run.run_id):
        emit(events.asset_event(state, parts, job, error=unfinished), once(run.run_id, "asset-END", job.run_key))
    emit(events.run_event(state, run, error))
    return True


def open_asset_runs(run_id: str) -> list[events.AssetJob]:
    """Asset runs of a Dagster run that started but never ended (their process died)."""
    spool = delivery().spool
    started = spool.claims(once(run_id, "asset-START"))  # notes hold the asset job
    ended_prefix = once(run_id, "asset-END", "-")[:-1]  # the claim name of an END, up to its run key
    ended = {name.removeprefix(ended_prefix) for name in spool.claims(ended_prefix)}
    jobs = [events.AssetJob.from_json(note) for _, note in sorted(started.items())]
    return [job for job in jobs if job.run_key not in ended]


@dataclasses.dataclass(frozen=True)
class _ObservedRun:
    """What the observer keeps for a Dagster run while its step runs."""

    run: events.DagsterRun
    runner: StepRunner
    parts: events.SerializedParts
    target: LineageDelivery  # resolved once a step: `delivery()` reads the whole environment
    pending: list = dataclasses.field(default_factory=list)  # asset events spooled at `before_report`


class OpenLineageObserver(StepObserver):
    """Emits asset-level events as a Hamilton step progresses."""

    def __init__(self):
        self._runs: dict[str, _ObservedRun] = {}
        self._jobs: dict[str, events.AssetJob] = {}
        self._started: dict[tuple[str, str], datetime] = {}  # (run, asset job) -> when its node started

    def step_started(self, context, runner: StepRunner, plan: ExecutionPlan) -> None:
        if not enabled():
            return
        window = context.partition_time_window if _has_time_window(context) else None
        run = dagster_run(context.instance, context.run.run_id, window)
        self._runs[run.run_id] = _ObservedRun(run, runner, events.SerializedParts(run), delivery())
        start_run(run)

    def asset_started(self, context, asset: str) -> None:
        if (observed := self._runs.get(context.run.run_id)) is not None:
            job = self._job(context, observed.runner, asset)
            self._started[(observed.run.run_id, job.run_key)] = datetime.now(UTC)

    def asset_running(self, context, asset: str, running_s: float) -> None:
        """A long node's START is spooled while it runs (once), so a cancel or crash can end it."""
        if (observed := self._runs.get(context.run.run_id)) is not None:
            run_id, job = observed.run.run_id, self._job(context, observed.runner, asset)
            start = events.asset_event(
                ol.RunState.START, observed.parts, job, at=self._started.get((run_id, job.run_key))
            )
            emit_all([(start, once(run_id, "asset-START", job.run_key), job)], observed.target)

    def asset_materialized(self, context, asset: str, materialized: Materialized) -> None:
        if (observed := self._runs.get(context.run.run_id)) is None:
            return
        runner = observed.runner
        upstream = materialized.upstream_paths
        inputs = [events.input_file(path) for path in upstream.values()]
        if not runner.dataflow.assets[asset].upstream:
            inputs += [events.input_file(path) for path in _source_files(materialized.value)]
        output = events.output_file(
            materialized.stored.path,
            materialized.value,
            materialized.stored.size_bytes,
            materialized.lineage,
            upstream,
            assertions=[_assertion(check) for check in materialized.check_results],
            column=asset,
        )
        self._end(observed, self._job(context, runner, asset), ol.RunState.COMPLETE, inputs, [output])

    def asset_failed(self, context, asset: str, error: BaseException) -> None:
        if (observed := self._runs.get(context.run.run_id)) is None or retries.will_retry(context):
            return
        self._end(observed, self._job(context, observed.runner, asset), ol.RunState.FAIL, error=error)

    def before_report(self, context) -> None:
        """The asset events of everything about to be reported, durable in one commit."""
        if (observed := self._runs.get(context.run.run_id)) is not None and observed.pending:
            emit_all(observed.pending, observed.target)
            observed.pending.clear()

    def step_finished(self, context, success: bool) -> None:
        self.before_report(context)  # a failed asset's FAIL, when nothing was reported after it
        if self._runs.pop(context.run.run_id, None) is not None:
            # No wait for delivery here: the step hook that ends the run drains once for all steps.
            self._started = {k: v for k, v in self._started.items() if k[0] != context.run.run_id}

    def _end(self, observed: _ObservedRun, job: events.AssetJob, state: ol.RunState, inputs=(), outputs=(), error=None):
        """START (unless spooled while the node ran: its claim makes this one a no-op) and the end
        event, spooled at `before_report`. The START's claim keeps the asset job, to close the
        asset run should its process die; the end's needs nothing."""
        run_id = observed.run.run_id
        end = events.asset_event(state, observed.parts, job, inputs, outputs, error)
        start = events.start_of(end, self._started.pop((run_id, job.run_key), None))
        observed.pending.extend(
            [(start, once(run_id, "asset-START", job.run_key), job), (end, once(run_id, "asset-END", job.run_key), None)]
        )

    def _job(self, context, runner: StepRunner, asset: str) -> events.AssetJob:
        if asset not in self._jobs:  # one observer per dataflow, so the asset name is unique
            self._jobs[asset] = self._describe(runner, asset)
        if getattr(context, "in_partition_range", False):
            return dataclasses.replace(self._jobs[asset], partition=context.partition_key)
        return self._jobs[asset]

    @staticmethod
    def _describe(runner: StepRunner, asset: str) -> events.AssetJob:
        key = runner.keys[asset]
        node = runner.dataflow.assets[asset].node
        fn = node.originating_functions[0] if node.originating_functions else None
        code = getattr(fn, "__code__", None)
        return events.AssetJob(
            name=f"{runner.dataflow.name}.{'.'.join(key.path)}",
            asset_key=key.to_user_string().replace("/", "."),
            source_file=code.co_filename if code else None,
            source_line=code.co_firstlineno if code else None,
            description=(node.documentation or "").strip() or None,
            owners=tuple(runner.translator.get_owners(node)),
            tags=runner.translator.get_tags(node),
        )


def _has_time_window(context) -> bool:
    try:
        has_partitions = context.has_partition_key or context.has_partition_key_range
        return has_partitions and context.partition_time_window is not None
    except Exception:  # not a time-window partition
        return False


def _source_files(value: object) -> list[str]:
    """Files a source node read, as it declares them in `DataFrame.attrs['source_files']`."""
    attrs = getattr(value, "attrs", None) or {}
    return [str(Path(p).resolve()) for p in attrs.get("source_files", [])]


def _assertion(check) -> facets.data_quality_assertions_dataset.Assertion:
    return facets.data_quality_assertions_dataset.Assertion(
        assertion=check.check_name,
        success=bool(check.passed),
        severity=check.severity.value.lower() if check.severity else None,
        description=check.description,
    )
