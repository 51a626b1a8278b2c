"""A Dagster run's own OpenLineage events: its START, and exactly one terminal event from hooks
and sensors.

Inside the run, the success/failure hook of each Hamilton step checks whether it is the last step
left (steps downstream of a failure count as done, since Dagster will skip them) and, if so, ends
the run. Runs that crash, are killed or canceled never reach those hooks; run-status sensors end
them instead. A claim in the spool makes whichever comes first the only one. A last sensor delivers
whatever is still spooled, so events from a backend outage arrive once it is back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime

import dagster as dg
from dagster import DagsterEventType
from openlineage.client import event_v2 as ol
from openlineage.client.event_v2 import RunState

from orchestration.lineage import client, events

logger = logging.getLogger(__name__)
DATAFLOW_TAG = "hamilton/dataflow"  # an op tag on every Hamilton step: the dataflow it runs
AD_HOC_JOBS = ("__ASSET_JOB", "__ephemeral_asset_job__")  # Dagster's names for "just these assets"
_STEP_ENDS = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED}


def dagster_run(instance, run_id: str, partition_window=None) -> events.LineageRun:
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
    return events.LineageRun(
        run_id=run_id,
        job_name=lineage_job_name(instance, run),
        created=created if created.tzinfo else created.replace(tzinfo=UTC),
        nominal_start=nominal_start,
        nominal_end=nominal_end,
        tags=dict(run.tags),
    )


def lineage_job_name(instance, run: dg.DagsterRun) -> str:
    """The run-level job's name: the Dagster job's, or for an ad-hoc materialization (Dagster's
    `__ASSET_JOB`) the dataflows it ran, joined by '+', so runs of one dataflow group together."""
    if run.job_name not in AD_HOC_JOBS or not run.execution_plan_snapshot_id:
        return run.job_name
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    ran = set(run.step_keys_to_execute or [step.key for step in plan.steps])  # a re-run of a subset
    dataflows = {(step.tags or {}).get(DATAFLOW_TAG) for step in plan.steps if step.key in ran}
    return "+".join(sorted(name for name in dataflows if name)) or run.job_name


def start_run(run: events.LineageRun) -> None:
    client.emit(events.run_event(ol.RunState.START, run), once_as=client.once(run.run_id, "START"))


def finish_run(run: events.LineageRun, state: ol.RunState, error: BaseException | str | None = None) -> bool:
    """Emits the run's one terminal event, and closes asset runs a crash left open."""
    if not client.delivery().spool.claim(client.once(run.run_id, "END")):
        return False
    start_run(run)  # a run that died before its first step still gets its START
    parts, unfinished = events.SerializedParts(run), "the run ended before this asset finished"
    for job in open_asset_runs(run.run_id):
        client.emit(
            events.asset_event(state, parts, job, error=unfinished),
            client.once(run.run_id, "asset-END", job.run_key),
        )
    client.emit(events.run_event(state, run, error))
    return True


def open_asset_runs(run_id: str) -> list[events.AssetJob]:
    """Asset runs of a Dagster run that started but never ended (their process died)."""
    spool = client.delivery().spool
    started = spool.claims(client.once(run_id, "asset-START"))  # notes hold the asset job
    ended_prefix = client.once(run_id, "asset-END", "-")[:-1]  # the claim name of an END, up to its run key
    ended = {name.removeprefix(ended_prefix) for name in spool.claims(ended_prefix)}
    jobs = [events.AssetJob.from_json(note) for _, note in sorted(started.items())]
    return [job for job in jobs if job.run_key not in ended]


@dg.success_hook(name="openlineage_step_succeeded")
def step_succeeded(context: dg.HookContext) -> None:
    _end_run_if_last_step(context, failed=False)


@dg.failure_hook(name="openlineage_step_failed")
def step_failed(context: dg.HookContext) -> None:
    _end_run_if_last_step(context, failed=True)


def _end_run_if_last_step(context: dg.HookContext, failed: bool) -> None:
    if not client.enabled():
        return
    try:
        failed_steps = _remaining_steps(context.instance, context.run_id, context.step_key, failed)
        if failed_steps is None:
            return
        run = dagster_run(context.instance, context.run_id)
        if failed_steps:
            error = context.op_exception if failed else f"step(s) {', '.join(sorted(failed_steps))} failed"
            finish_run(run, RunState.FAIL, error)
        else:
            finish_run(run, RunState.COMPLETE)
        client.drain()
    except Exception:  # lineage must never fail a run
        logger.warning("Could not end the OpenLineage run for %s", context.run_id, exc_info=True)


def _remaining_steps(instance, run_id: str, step_key: str, failed: bool) -> set[str] | None:
    """None while other steps may still run; else the set of failed steps (empty: success)."""
    run = instance.get_run_by_id(run_id)
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    done, failed_steps = {step_key}, {step_key} if failed else set()
    for record in instance.get_records_for_run(run_id, of_type=_STEP_ENDS).records:
        entry = record.event_log_entry
        done.add(entry.step_key)
        if entry.dagster_event.event_type == DagsterEventType.STEP_FAILURE:
            failed_steps.add(entry.step_key)
    children: dict[str, set[str]] = defaultdict(set)
    for step in plan.steps:
        for step_input in step.inputs:
            for handle in step_input.upstream_output_handles:
                children[handle.step_key].add(step.key)
    doomed, frontier = set(), list(failed_steps)
    while frontier:
        for child in children[frontier.pop()]:
            if child not in doomed:
                doomed.add(child)
                frontier.append(child)
    if set(plan.step_keys_to_execute) - done - doomed:
        return None
    return failed_steps


def _end_from_sensor(context: dg.RunStatusSensorContext, state: RunState, error: str | None = None):
    if not client.enabled():
        return dg.SkipReason("OpenLineage is disabled (OPENLINEAGE_DISABLED=true)")
    run = dagster_run(context.instance, context.dagster_run.run_id)
    if finish_run(run, state, error):
        client.drain()
        return dg.SkipReason(f"emitted {state.value} for run {run.run_id}")
    return dg.SkipReason(f"run {run.run_id} already ended in lineage")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="openlineage_run_succeeded",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_succeeded(context: dg.RunStatusSensorContext):
    return _end_from_sensor(context, RunState.COMPLETE)


@dg.run_failure_sensor(name="openlineage_run_failed", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failed(context: dg.RunFailureSensorContext):
    message = context.failure_event.message if context.failure_event else "the run failed"
    return _end_from_sensor(context, RunState.FAIL, message)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="openlineage_run_canceled",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_canceled(context: dg.RunStatusSensorContext):
    return _end_from_sensor(context, RunState.ABORT, "the run was canceled")


@dg.sensor(
    name="openlineage_spool",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers OpenLineage events that are still spooled (e.g. after a backend outage).",
)
def deliver_spooled_events(context: dg.SensorEvaluationContext):
    if not client.enabled():
        return dg.SkipReason("OpenLineage is disabled (OPENLINEAGE_DISABLED=true)")
    target = client.delivery()
    sent, pending = target.deliver_pending()
    reason = f"delivered {sent} spooled event(s); {pending} waiting"
    if target.last_error:
        reason += f"; backend error: {target.last_error}"
    return dg.SkipReason(reason)


def lineage_sensors() -> list:
    """Add these to `Definitions(sensors=...)` so crashed and canceled runs end in lineage too."""
    return [run_succeeded, run_failed, run_canceled, deliver_spooled_events]
