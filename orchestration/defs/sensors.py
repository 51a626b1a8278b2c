"""Sensors: new landing files start sales runs, updated sales metrics retrain the model, and
every run's end reaches lineage and, on failure, the alert channels.

`LANDING_SENSOR_INTERVAL_S` (default 30) paces the landing sensor; `SUCCESS_NOTICE_JOBS` (e.g.
`sales_daily,ml_training`) also announces those jobs' successful runs; `CHECK_WARNING_ALERTS=true`
sends a message for each successful run whose warn-level checks failed; `RETRY_ALERTS=true` one
for each step Dagster retries ("attempt n of m"); `FRESHNESS_ALERTS=true` one when an asset's
freshness policy turns WARN or FAIL. Retry and freshness notices about the same step or asset are
sent at most once per `NOTICE_REPEAT_MIN` minutes (default 30), several in one tick as one digest.
Notifiers: `SLACK_WEBHOOK_URL`, `ALERT_SMTP_*`, `ALERT_APPRISE_URLS` (orchestration/ops/alerts.py).
"""

import os

import dagster as dg

from hamilton_pipelines.sales_files import sales_date_of, sales_file_problem
from orchestration import HamiltonComponent
from orchestration.defs.jobs import ml_training, sales_daily
from orchestration.lineage.runs import lineage_sensors
from orchestration.ops.alerts import alert_sensors, check_warnings_from_env, notice_jobs_from_env
from orchestration.ops.event_notices import event_notice_sensors, freshness_from_env, retries_from_env
from orchestration.ops.landing_sensor import landing_sensor
from orchestration.ops.notice_limits import repeat_seconds_from_env


# Whenever the sales metrics are updated (the seed's ExternalTaskSensor), once this is on. One run
# per tick however many partitions changed: a backfill retrains once, not once per day.
@dg.asset_sensor(
    asset_key=dg.AssetKey("business_metrics"),
    job=ml_training,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def retrain_on_sales_metrics(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    return dg.RunRequest(run_key=f"business_metrics:{asset_event.run_id}:{asset_event.timestamp}")


@dg.definitions
def defs(context: dg.ComponentLoadContext) -> dg.Definitions:
    sales = context.load_component("sales", HamiltonComponent)
    notice = notice_jobs_from_env([sales_daily, ml_training])
    return dg.Definitions(
        sensors=[
            landing_sensor(
                sales_daily,
                partition_of=sales_date_of,
                problem_of=sales_file_problem,
                partitions_def=sales.partitions_def,
                minimum_interval_seconds=_seconds("LANDING_SENSOR_INTERVAL_S", 30),
            ),
            retrain_on_sales_metrics,
            *lineage_sensors(),
            *alert_sensors(notice, check_warnings=check_warnings_from_env()),
            *event_notice_sensors(
                retries=retries_from_env(), freshness=freshness_from_env(), repeat_s=repeat_seconds_from_env()
            ),
        ]
    )


def _seconds(variable: str, default: int) -> int:
    value = os.environ.get(variable) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable}={value!r}: give a whole number of seconds, 1 or more.")
    return int(value)
