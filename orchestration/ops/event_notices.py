"""Notices read from the event log: a step Dagster retries (`RETRY_ALERTS=true`) and an asset that
turns stale or nearly stale under its freshness policy (`FRESHNESS_ALERTS=true`), sent through the
same notifiers as the run alerts (`ops.alerts`), rate-limited by `ops.notice_limits`.

Each sensor keeps what it has read in its cursor, which Dagster stores in the instance, so each
event is announced once, also across daemon restarts.

- Retries: a `STEP_UP_FOR_RETRY` event says a step failed and will run again; it does not say how
  many attempts the step has. That comes from the step's `RetryPolicy` (`max_retries + 1`) in this
  code location's job of that name; a run of a job this code location does not define says so in
  its message. Retry events live in each run's own event log (SQLite keeps one database per run),
  so the sensor reads the runs in progress and those that ended since its last tick, and keeps per
  run the last event it read.
- Freshness: Dagster's freshness daemon evaluates each asset's `FreshnessPolicy` and records a
  `FRESHNESS_STATE_CHANGE` event when the state changes (PASS, WARN, FAIL); the sensor reads those
  after its cursor's storage id and announces WARN and FAIL, each change once (an asset back to
  PASS gets no message).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle
from dagster._core.definitions.freshness import FreshnessStateChange, TimeWindowFreshnessPolicy
from dagster._core.definitions.repository_definition import RepositoryDefinition
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from orchestration.ops.alerts import Alerting, notify, run_link, switch_from_env, webserver_url
from orchestration.ops.notice_limits import Notice, admit, one_message

RETRIES_VARIABLE = "RETRY_ALERTS"
FRESHNESS_VARIABLE = "FRESHNESS_ALERTS"
TICK_S = 30
# A run that ended up to this long before the last tick is read once more: run storage stamps its
# end a moment after its last events are written.
RUN_OVERLAP_S = 60
FRESHNESS_BATCH = 1000
RETRY_WRAPPERS = ("RetryRequestedFromPolicy", "RetryRequested")
FRESHNESS_WORDS = {"WARN": "nearly stale", "FAIL": "stale"}


def retries_from_env() -> bool:
    """`$RETRY_ALERTS`: `true` turns retry notices on (off by default)."""
    return switch_from_env(RETRIES_VARIABLE)


def freshness_from_env() -> bool:
    """`$FRESHNESS_ALERTS`: `true` turns freshness notices on (off by default)."""
    return switch_from_env(FRESHNESS_VARIABLE)


def event_notice_sensors(retries: bool, freshness: bool, repeat_s: int) -> list[dg.SensorDefinition]:
    """The sensors switched on; `repeat_s` is the rate limit of `ops.notice_limits.admit`."""
    sensors = []
    if retries:
        sensors.append(retry_notice_sensor(repeat_s))
    if freshness:
        sensors.append(freshness_notice_sensor(repeat_s))
    return sensors


# -- retries ----------------------------------------------------------------------------------------


def retry_notice_sensor(repeat_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="retry_notices",
        minimum_interval_seconds=TICK_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def retry_notices(context: dg.SensorEvaluationContext, alerting: Alerting):
        now = time.time()
        cursor = json.loads(context.cursor) if context.cursor else {}
        notices, read_up_to = new_retries(
            context.instance, context.repository_def, cursor.get("runs", {}), cursor.get("checked_at")
        )
        admitted, sent = admit(notices, cursor.get("sent", {}), now, repeat_s)
        context.update_cursor(json.dumps({"checked_at": now, "runs": read_up_to, "sent": sent}))
        return dg.SkipReason(_outcome(context, alerting, notices, admitted, "retry notices"))

    return retry_notices


def new_retries(
    instance: dg.DagsterInstance,
    repository: RepositoryDefinition | None,
    read_up_to: dict[str, int],
    checked_at: float | None,
) -> tuple[list[Notice], dict[str, int]]:
    """Retry notices for the `STEP_UP_FOR_RETRY` events after `read_up_to[run_id]` (a storage id
    per run), and the new `read_up_to`, which keeps only the runs read now (a run that ended
    before the last tick is not read again)."""
    notices, read_now = [], {}
    for run in _runs_to_read(instance, checked_at):
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
        ).records
        already = read_up_to.get(run.run_id, -1)
        attempts_by_step: dict[str, int] = {}
        for record in records:
            step = record.event_log_entry.step_key or "-"
            attempts_by_step[step] = attempts_by_step.get(step, 0) + 1
            if record.storage_id > already:
                notices.append(_retry_notice(run, step, attempts_by_step[step], record, repository))
        read_now[run.run_id] = max([already, *(r.storage_id for r in records)])
    return notices, read_now


def _runs_to_read(instance: dg.DagsterInstance, checked_at: float | None) -> list[dg.DagsterRun]:
    """Runs in progress, and runs updated since shortly before the last tick (the first tick: in
    the last `RUN_OVERLAP_S`)."""
    since = (checked_at or time.time()) - RUN_OVERLAP_S
    running = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
    updated = instance.get_runs(filters=dg.RunsFilter(updated_after=datetime.fromtimestamp(since, UTC)))
    return list({run.run_id: run for run in [*running, *updated]}.values())


def _retry_notice(
    run: dg.DagsterRun, step: str, attempt: int, record, repository: RepositoryDefinition | None
) -> Notice:
    retry = record.event_log_entry.dagster_event.event_specific_data
    error = _first_line_of_cause(retry.error)
    allowed = attempts_allowed(repository, run.job_name, step)
    of = f"of {allowed}" if allowed else "of an unknown number"
    wait = f" in {retry.seconds_to_wait:g} s" if retry.seconds_to_wait else ""
    unknown = (
        ""
        if allowed
        else f"\n(The number of attempts is unknown: job {run.job_name} is not defined in this code "
        "location, and the retry event does not carry its retry policy.)"
    )
    return Notice(
        kind="retry",
        about=f"{run.job_name}/{step}",
        subject=f"[dagster] {run.job_name}: {step} failed on attempt {attempt} {of}, retrying",
        body=(
            f"Step {step} of job {run.job_name} failed on attempt {attempt} {of}; Dagster retries "
            f"it{wait}.\nError: {error}\nRun: {run.run_id}\n"
            f"Partition: {run.tags.get('dagster/partition', '-')}\nLogs: {run_link(run.run_id)}{unknown}"
        ),
        line=f"{run.job_name} / {step}: attempt {attempt} {of} failed ({error}) — {run_link(run.run_id)}",
    )


def _first_line_of_cause(error) -> str:
    """The first line of what failed the step: a retry policy's error wraps it as its cause."""
    while error is not None and error.cls_name in RETRY_WRAPPERS:
        error = error.cause or error.context
    return error.message.strip().splitlines()[0] if error is not None else "unknown error"


def attempts_allowed(repository: RepositoryDefinition | None, job_name: str, step: str) -> int | None:
    """`max_retries + 1` of the step's retry policy in this code location's job `job_name`; None
    when the job or step is not defined here or has no policy."""
    if repository is None or not repository.has_job(job_name):
        return None
    node = re.sub(r"\[.*\]$", "", step)  # a mapped step "op[key]" runs the node "op"
    try:
        policy = repository.get_job(job_name).get_retry_policy_for_handle(NodeHandle.from_string(node))
    except dg.DagsterInvariantViolationError:
        return None
    return policy.max_retries + 1 if policy else None


# -- freshness --------------------------------------------------------------------------------------


def freshness_notice_sensor(repeat_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="freshness_notices",
        minimum_interval_seconds=TICK_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def freshness_notices(context: dg.SensorEvaluationContext, alerting: Alerting):
        now = time.time()
        cursor = json.loads(context.cursor) if context.cursor else {}
        changes, after = freshness_changes(context.instance, cursor.get("after"))
        notices = [
            _freshness_notice(context.instance, context.repository_def, change, now)
            for change in changes
            if change.new_state.value in FRESHNESS_WORDS
        ]
        admitted, sent = admit(notices, cursor.get("sent", {}), now, repeat_s)
        context.update_cursor(json.dumps({"after": after, "sent": sent}))
        return dg.SkipReason(_outcome(context, alerting, notices, admitted, "freshness notices"))

    return freshness_notices


def freshness_changes(
    instance: dg.DagsterInstance, after: int | None
) -> tuple[list[FreshnessStateChange], int | None]:
    """Each asset's latest freshness state change after storage id `after` (a state it left
    since the last tick is not announced), and the storage id read up to. The first tick (no
    `after`) only notes where the log ends: states from before the sensor was on are not news."""
    storage = instance.event_log_storage
    if after is None:
        newest = storage.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.FRESHNESS_STATE_CHANGE), limit=1, ascending=False
        )
        return [], newest[0].storage_id if newest else 0
    latest: dict[dg.AssetKey, FreshnessStateChange] = {}
    while True:
        records = storage.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
            limit=FRESHNESS_BATCH,
            ascending=True,
        )
        for record in records:
            change = record.event_log_entry.get_dagster_event().event_specific_data
            if isinstance(change, FreshnessStateChange):
                latest[change.key] = change
        if records:
            after = records[-1].storage_id
        if len(records) < FRESHNESS_BATCH:
            return list(latest.values()), after


def _freshness_notice(
    instance: dg.DagsterInstance, repository: RepositoryDefinition | None, change, now: float
) -> Notice:
    asset, state = change.key.to_user_string(), change.new_state.value
    last = instance.get_latest_materialization_event(change.key)
    materialized = (
        f"{datetime.fromtimestamp(last.timestamp, UTC):%Y-%m-%d %H:%M} UTC ({(now - last.timestamp) / 3600:.1f} h ago)"
        if last
        else "never"
    )
    link = f"{webserver_url()}/assets/{'/'.join(change.key.path)}"
    return Notice(
        kind=f"freshness {state}",
        about=asset,
        subject=f"[dagster] {asset} is {FRESHNESS_WORDS[state]} ({state})",
        body=(
            f"Asset {asset} is {FRESHNESS_WORDS[state]}: its freshness went from "
            f"{change.previous_state.value} to {state}.{_policy_words(repository, change.key)}\n"
            f"Last materialized: {materialized}\nAsset: {link}"
        ),
        line=f"{asset}: {state}, last materialized {materialized} — {link}",
    )


def _policy_words(repository: RepositoryDefinition | None, key: dg.AssetKey) -> str:
    """ " Its policy: …" for a time-window policy defined in this code location, else nothing."""
    if repository is None or not repository.asset_graph.has(key):
        return ""
    policy = repository.asset_graph.get(key).freshness_policy
    if not isinstance(policy, TimeWindowFreshnessPolicy):
        return ""
    warn = policy.warn_window
    warn_words = f", warn after {_hours(warn.to_timedelta().total_seconds())}" if warn else ""
    return f" Its policy: fail after {_hours(policy.fail_window.to_timedelta().total_seconds())}{warn_words}."


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h"


# -- sending ----------------------------------------------------------------------------------------


def _outcome(context, alerting: Alerting, notices: Sequence[Notice], admitted: Sequence[Notice], what: str):
    """Sends the admitted notices as one message; the tick's skip reason says what happened."""
    held = len(notices) - len(admitted)
    held_words = f" ({held} held back: sent about the same within the rate limit)" if held else ""
    if not admitted:
        return f"no new {what}{held_words}"
    subject, body = one_message(admitted, what)
    return f"{len(admitted)} {what}{held_words}: {notify(context, alerting.notifiers(), subject, body)}"
