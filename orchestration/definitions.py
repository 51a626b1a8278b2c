"""The project's Dagster definitions: the shipped dataflows as assets, with their schedules and
sensors (loaded by workspace.yaml).

Loading them does no work beyond building them: `scripts/dev` writes the sample week of sales
(`python -m hamilton_pipelines.sample_data`) into a landing folder that does not exist yet.

Environment: `PIPELINE_DATA_DIR` (all local state), `LANDING_DIR` (where daily exports arrive),
`PIPELINE_TIMEZONE` (the day boundary of the daily partitions and schedule, default UTC).
"""

import os

import dagster as dg

from hamilton_pipelines import ml_pipeline, sales_analytics
from hamilton_pipelines.sales_files import sales_date_of, sales_file_problem
from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from orchestration.monitoring.slack_progress import progress_callbacks_from_env
from orchestration.ops.alerts import alert_sensors, alerting_from_env
from orchestration.ops.landing_sensor import landing_sensor
from orchestration.paths import landing_dir

SAMPLE_START = "2026-01-01"
RETRIES = dg.RetryPolicy(
    max_retries=3, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


daily = dg.DailyPartitionsDefinition(
    start_date=SAMPLE_START, timezone=os.environ.get("PIPELINE_TIMEZONE", "UTC")
)
sales_assets = hamilton_assets(
    sales_analytics,
    config={"sales_scope": "daily", "landing_dir": str(landing_dir())},
    partitions_def=daily,
    partition_input="sales_date",
    retry_policy=RETRIES,
    # A backfill is one run over its whole range: a day's work is far cheaper than a run's start.
    backfill_policy=dg.BackfillPolicy.single_run(),
    progress_callbacks=progress_callbacks_from_env("sales_analytics"),
)
ml_assets = hamilton_assets(
    ml_pipeline, retry_policy=RETRIES, progress_callbacks=progress_callbacks_from_env("ml_pipeline")
)

sales_daily = dg.define_asset_job("sales_daily", selection=[sales_assets])
# At 06:00 in PIPELINE_TIMEZONE, materialize the day that just ended.
sales_schedule = dg.build_schedule_from_partitioned_job(
    sales_daily, hour_of_day=6, default_status=dg.DefaultScheduleStatus.STOPPED
)
# The model retrains weekly (Mondays 07:00), independent of the daily sales runs.
ml_training = dg.define_asset_job("ml_training", selection=[ml_assets])
ml_schedule = dg.ScheduleDefinition(
    job=ml_training,
    cron_schedule="0 7 * * 1",
    execution_timezone=daily.timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


# ...or whenever the sales metrics are updated (the seed's ExternalTaskSensor), once this is on.
# One run per tick however many partitions changed: a backfill retrains once, not once per day.
@dg.asset_sensor(
    asset_key=dg.AssetKey("business_metrics"),
    job=ml_training,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def retrain_on_sales_metrics(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    return dg.RunRequest(run_key=f"business_metrics:{asset_event.run_id}:{asset_event.timestamp}")


sales_landing = landing_sensor(
    sales_daily,
    partition_of=sales_date_of,
    problem_of=sales_file_problem,
    partitions_def=daily,
    minimum_interval_seconds=int(os.environ.get("LANDING_SENSOR_INTERVAL_S", "30")),
)

# Alerts go to every notifier configured in the environment (see orchestration/ops/alerts.py);
# SUCCESS_NOTICE_JOBS=sales_daily also announces that job's successful runs.
notice_jobs = [
    job for job in [sales_daily] if job.name in os.environ.get("SUCCESS_NOTICE_JOBS", "").split(",")
]

defs = dg.Definitions(
    assets=[sales_assets, ml_assets],
    jobs=[sales_daily, ml_training],
    schedules=[sales_schedule, ml_schedule],
    sensors=[sales_landing, retrain_on_sales_metrics, *lineage_sensors(), *alert_sensors(notice_jobs)],
    resources={"alerting": alerting_from_env()},
)
