"""Run alerts: a run-failure sensor (and optional success notices) sent through the notifiers
(`orchestration.notifiers`) the environment configures.

    SLACK_WEBHOOK_URL                           Slack incoming webhook
    ALERT_SMTP_HOST, ALERT_SMTP_PORT (25)       e-mail over SMTP
    ALERT_SMTP_USER, ALERT_SMTP_PASSWORD        optional login (STARTTLS with ALERT_SMTP_STARTTLS=true)
    ALERT_EMAIL_FROM, ALERT_EMAIL_TO            sender, comma-separated recipients
    ALERT_APPRISE_URLS                          Apprise URLs (msteams://, pagerduty://, json://, ...),
                                                separated by spaces or commas
    DAGSTER_WEBSERVER_URL                       link target in messages (default http://127.0.0.1:3000)
    SUCCESS_NOTICE_JOBS                         jobs whose successful runs are announced too
    CHECK_WARNING_ALERTS=true                   a message for each successful run whose warn-level
                                                checks failed (one per run, however many failed)

Retry and freshness notices (`RETRY_ALERTS`, `FRESHNESS_ALERTS`) are in `ops.event_notices`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

from orchestration.notifiers import (
    AppriseNotifier,
    NotDelivered,
    Notifier,
    SlackWebhook,
    SmtpEmail,
    unusable_apprise_urls,
)

logger = logging.getLogger(__name__)
NOTICE_JOBS_VARIABLE = "SUCCESS_NOTICE_JOBS"
CHECK_WARNINGS_VARIABLE = "CHECK_WARNING_ALERTS"
APPRISE_VARIABLE = "ALERT_APPRISE_URLS"


class Alerting(dg.ConfigurableResource):
    """The notifiers alerts go to; each is optional."""

    slack: SlackWebhook | None = None
    email: SmtpEmail | None = None
    apprise: AppriseNotifier | None = None

    def notifiers(self) -> list[Notifier]:
        return [n for n in (self.slack, self.email, self.apprise) if n is not None]


def alerting_from_env() -> Alerting:
    """Notifiers for the environment variables that are set; secrets stay `EnvVar`s."""

    def optional(name: str):
        return dg.EnvVar(name) if os.environ.get(name) else None

    slack = SlackWebhook(url=dg.EnvVar("SLACK_WEBHOOK_URL")) if os.environ.get("SLACK_WEBHOOK_URL") else None
    email = None
    if os.environ.get("ALERT_SMTP_HOST"):
        email = SmtpEmail(
            host=dg.EnvVar("ALERT_SMTP_HOST"),
            port=dg.EnvVar.int("ALERT_SMTP_PORT") if os.environ.get("ALERT_SMTP_PORT") else 25,
            sender=dg.EnvVar("ALERT_EMAIL_FROM"),
            recipients=dg.EnvVar("ALERT_EMAIL_TO"),
            user=optional("ALERT_SMTP_USER"),
            password=optional("ALERT_SMTP_PASSWORD"),
            starttls=os.environ.get("ALERT_SMTP_STARTTLS", "").lower() == "true",
        )
    return Alerting(slack=slack, email=email, apprise=apprise_from_env())


def apprise_from_env() -> AppriseNotifier | None:
    """`$ALERT_APPRISE_URLS`, checked now: a URL Apprise cannot use fails the load, named by its
    position and scheme only (the rest of it may be a token)."""
    value = os.environ.get(APPRISE_VARIABLE, "").strip()
    if not value:
        return None
    unusable = unusable_apprise_urls(value)
    if unusable:
        raise ValueError(
            f"{APPRISE_VARIABLE}: URL {', '.join(unusable)} is not one Apprise can send to. Fix: give "
            "Apprise URLs (https://appriseit.com/services/), separated by spaces or commas, e.g. "
            "msteams://..., pagerduty://..., json://host:port/path."
        )
    return AppriseNotifier(urls=dg.EnvVar(APPRISE_VARIABLE))


def notify(context, notifiers: Sequence[Notifier], subject: str, body: str) -> str:
    """Sends to every notifier; one that is down is reported, never raised."""
    outcomes = []
    for notifier in notifiers:
        try:
            notifier.send(subject, body)
            outcomes.append(f"sent via {notifier.describe()}")
        except Exception as error:  # noqa: BLE001 - a dead notifier must not stop the others
            detail = str(error) if isinstance(error, NotDelivered) else type(error).__name__
            outcomes.append(f"NOT delivered via {notifier.describe()} ({detail})")
            context.log.warning(f"Alert not delivered via {notifier.describe()}: {detail}")
    return "; ".join(outcomes) or "no notifier configured"


def run_link(run_id: str) -> str:
    return f"{webserver_url()}/runs/{run_id}"


def webserver_url() -> str:
    return os.environ.get("DAGSTER_WEBSERVER_URL", "http://127.0.0.1:3000").rstrip("/")


def notice_jobs_from_env(jobs: Sequence[dg.JobDefinition | dg.UnresolvedAssetJobDefinition]) -> list:
    """The jobs `$SUCCESS_NOTICE_JOBS` names (comma-separated), among `jobs`; a name that is none
    of them is refused, so a typo never silently announces nothing."""
    names = [name.strip() for name in os.environ.get(NOTICE_JOBS_VARIABLE, "").split(",") if name.strip()]
    by_name = {job.name: job for job in jobs}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(
            f"{NOTICE_JOBS_VARIABLE} names {', '.join(repr(n) for n in unknown)}, which is not a job of "
            f"this project. Fix: use the names of jobs, comma-separated: {', '.join(sorted(by_name))}."
        )
    return [by_name[name] for name in names]


def check_warnings_from_env() -> bool:
    """`$CHECK_WARNING_ALERTS`: `true` turns the check-warning messages on (off by default)."""
    return switch_from_env(CHECK_WARNINGS_VARIABLE)


def switch_from_env(variable: str) -> bool:
    """An opt-in switch: `true` turns it on, `false` or unset leaves it off, anything else is refused."""
    value = os.environ.get(variable, "").strip().lower()
    if value not in ("", "true", "false"):
        raise ValueError(f"{variable}={value!r}: give true or false.")
    return value == "true"


def failed_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's failed warn-level asset checks, as `asset:check (description)` lines, in order."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    lines = []
    for record in records.records:
        evaluation = record.event_log_entry.get_dagster_event().event_specific_data
        if (
            not isinstance(evaluation, AssetCheckEvaluation)
            or evaluation.passed
            or evaluation.severity != dg.AssetCheckSeverity.WARN
        ):
            continue
        description = f" ({evaluation.description})" if evaluation.description else ""
        lines.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}{description}")
    return lines


def alert_sensors(
    notice_jobs: Sequence[dg.JobDefinition | dg.UnresolvedAssetJobDefinition] = (),
    check_warnings: bool = False,
) -> list[dg.SensorDefinition]:
    """A run-failure sensor for every job, success notices for `notice_jobs`, and with
    `check_warnings` a message for each successful run whose warn-level checks failed (a failed
    run already alerts); all use the `alerting` resource (see `alerting_from_env`)."""

    @dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING)
    def run_failure_alerts(context: dg.RunFailureSensorContext, alerting: Alerting):
        run = context.dagster_run
        failures = context.get_step_failure_events()
        steps = ", ".join(e.step_key for e in failures if e.step_key) or "-"
        errors = [e.step_failure_data.error for e in failures if e.step_failure_data.error]
        error = (
            errors[0].message.strip().splitlines()[0]
            if errors
            else (context.failure_event.message if context.failure_event else "unknown error")
        )
        body = (
            f"Run {run.run_id} of job {run.job_name} failed.\n"
            f"Failed steps: {steps}\nError: {error}\nPartition: {run.tags.get('dagster/partition', '-')}\n"
            f"Logs: {run_link(run.run_id)}"
        )
        outcome = notify(context, alerting.notifiers(), f"[dagster] {run.job_name} failed", body)
        return dg.SkipReason(f"alert for run {run.run_id}: {outcome}")

    sensors: list[dg.SensorDefinition] = [run_failure_alerts]
    if check_warnings:

        @dg.run_status_sensor(
            run_status=dg.DagsterRunStatus.SUCCESS,
            name="check_warning_alerts",
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
        def check_warning_alerts(context: dg.RunStatusSensorContext, alerting: Alerting):
            run = context.dagster_run
            warnings = failed_warnings(context.instance, run.run_id)
            if not warnings:
                return dg.SkipReason(f"run {run.run_id}: no warn-level check failed")
            body = (
                f"Run {run.run_id} of job {run.job_name} succeeded, but {len(warnings)} warn-level "
                "check(s) failed:\n" + "\n".join(f"- {line}" for line in warnings) + "\n"
                f"Partition: {run.tags.get('dagster/partition', '-')}\nLogs: {run_link(run.run_id)}"
            )
            subject = f"[dagster] {run.job_name}: {len(warnings)} check warning(s)"
            outcome = notify(context, alerting.notifiers(), subject, body)
            return dg.SkipReason(f"check warnings of run {run.run_id}: {outcome}")

        sensors.append(check_warning_alerts)
    if not notice_jobs:
        return sensors

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="run_success_notices",
        monitored_jobs=list(notice_jobs),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def run_success_notices(context: dg.RunStatusSensorContext, alerting: Alerting):
        run = context.dagster_run
        body = (
            f"Run {run.run_id} of job {run.job_name} succeeded.\n"
            f"Partition: {run.tags.get('dagster/partition', '-')}\nLogs: {run_link(run.run_id)}"
        )
        outcome = notify(context, alerting.notifiers(), f"[dagster] {run.job_name} succeeded", body)
        return dg.SkipReason(f"notice for run {run.run_id}: {outcome}")

    return [*sensors, run_success_notices]
