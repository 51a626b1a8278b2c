"""The code location of the infrastructure-fault tests.

- `steady` and `short_lived`: the slow dataflow (`fault_flow`) as jobs with different runtime
  limits;
- `daily`: a quick daily dataflow (`daily_flow`) run in-process, started by the shipped landing
  sensor for each `<day>.csv` dropped in `$FAULT_DROP_DIR` (one run per file version);
- `every_minute`: a schedule, stopped until a test starts it, whose evaluation takes
  `FAULT_TICK_S` seconds and leaves `$FAULT_DROP_DIR/ticks/<time>` when it begins, so a test can
  kill the daemon in the middle of a tick.
"""

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from orchestration.ops.landing_sensor import landing_sensor
from tests.deploy import daily_flow, fault_flow

DAYS = dg.DailyPartitionsDefinition(start_date="2020-01-01")

slow = hamilton_assets(fault_flow)
quick = hamilton_assets(daily_flow, partitions_def=DAYS, partition_input="day")

# Hours-long runs are what this product is for: a limit per job, not one for the instance.
steady = dg.define_asset_job("steady", selection=[slow], tags={"dagster/max_runtime": "3600"})
short_lived = dg.define_asset_job("short_lived", selection=[slow], tags={"dagster/max_runtime": "20"})
daily = dg.define_asset_job(
    "daily", selection=[quick], partitions_def=DAYS, executor_def=dg.in_process_executor
)


def drops() -> Path:
    return Path(os.environ["FAULT_DROP_DIR"])


def day_of(name: str) -> str | None:
    """`2021-03-04.csv` is for 2021-03-04."""
    try:
        return dt.date.fromisoformat(name.removesuffix(".csv")).isoformat() if name.endswith(".csv") else None
    except ValueError:
        return None


landed_days = landing_sensor(
    daily,
    partition_of=day_of,
    problem_of=lambda path: None,
    partitions_def=DAYS,
    folder=drops,
    name="landed_days",
    minimum_interval_seconds=2,
)


@dg.schedule(job=steady, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.STOPPED)
def every_minute(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    ticks = drops() / "ticks"
    ticks.mkdir(exist_ok=True)
    (ticks / context.scheduled_execution_time.strftime("%H%M")).touch()
    time.sleep(float(os.environ.get("FAULT_TICK_S", "0")))
    return dg.RunRequest()


defs = dg.Definitions(
    assets=[slow, quick],
    jobs=[steady, short_lived, daily],
    sensors=[landed_days, *lineage_sensors()],
    schedules=[every_minute],
)
