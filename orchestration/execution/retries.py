"""What a person should hear about retries: which attempt this is, what caused it, how long it waits.

Dagster retries a failed step under its `RetryPolicy` and records why in a `STEP_UP_FOR_RETRY`
event (the error and the wait it drew, jitter included). The failing attempt announces the retry
with the wait the policy gives before jitter; the next attempt reads that event and says which
attempt it is, the node and error that caused it, and the wait Dagster actually took.
"""

from __future__ import annotations

import re

import dagster as dg
from dagster import DagsterEventType

from orchestration.monitoring.progress import duration


def will_retry(context) -> bool:
    policy = context.op_execution_context.op_def.retry_policy
    return bool(policy) and context.op_execution_context.retry_number < policy.max_retries


def attempts(context) -> tuple[int, int]:
    """(this attempt, attempts the policy allows), both counted from 1."""
    op_context = context.op_execution_context
    policy = op_context.op_def.retry_policy
    return op_context.retry_number + 1, (policy.max_retries if policy else 0) + 1


def retry_announcement(context, cause: str) -> str:
    """Said by a failing attempt that Dagster will retry: `cause` is the node and its error."""
    attempt, allowed = attempts(context)
    policy: dg.RetryPolicy = context.op_execution_context.op_def.retry_policy
    wait = policy.calculate_delay(attempt) if policy.jitter is None else _unjittered(policy, attempt)
    about = "" if policy.jitter is None else "about "
    return (
        f"{cause}. Dagster retries this step: attempt {attempt + 1} of {allowed} in {about}{duration(wait)}."
    )


def attempt_note(context) -> str | None:
    """For a retry, `attempt n of m, after …: <error> (waited X s)`; None on a first attempt."""
    attempt, allowed = attempts(context)
    if attempt == 1:
        return None
    step_context = context.op_execution_context.get_step_execution_context()
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY, ascending=False, limit=50
    ).records
    retry = next(
        (
            r.event_log_entry.dagster_event
            for r in records
            if r.event_log_entry.step_key == step_context.step.key
        ),
        None,
    )
    note = f"Attempt {attempt} of {allowed}"
    if retry is None:
        return note + "."
    data = retry.step_retry_data
    cause = _first_line(data.error) if data and data.error else "the last attempt failed"
    waited = (
        f" (waited {duration(data.seconds_to_wait)})" if data and data.seconds_to_wait is not None else ""
    )
    return f"{note}, after {cause}{waited}"


def _first_line(error) -> str:
    """The first line of what failed: Dagster wraps the step's error in its retry request."""
    while error.cls_name in ("RetryRequestedFromPolicy", "RetryRequested") and (error.cause or error.context):
        error = error.cause or error.context
    message = (error.message or "").strip().splitlines()[0] if error.message else error.cls_name
    return re.sub(rf"^([\w.]+\.)?{re.escape(error.cls_name)}: ", "", message)  # the exception's own words


def _unjittered(policy: dg.RetryPolicy, attempt: int) -> float:
    return dg.RetryPolicy(
        max_retries=policy.max_retries, delay=policy.delay, backoff=policy.backoff
    ).calculate_delay(attempt)
