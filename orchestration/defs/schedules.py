"""Daily sales at 06:00 and weekly training, in the sales partitions' timezone (both stopped
until an operator turns them on)."""

import dagster as dg

from orchestration import DataflowError, HamiltonComponent
from orchestration.defs.jobs import ml_training, sales_daily


@dg.definitions
def defs(context: dg.ComponentLoadContext) -> dg.Definitions:
    days = context.load_component("sales", HamiltonComponent).partitions_def
    if not isinstance(days, dg.TimeWindowPartitionsDefinition):
        raise DataflowError(
            "sales/defs.yaml: partitions_def must be daily; the schedules follow its timezone."
        )
    timezone = days.timezone
    return dg.Definitions(
        schedules=[
            # At 06:00, materialize the day that just ended.
            dg.build_schedule_from_partitioned_job(
                sales_daily, hour_of_day=6, default_status=dg.DefaultScheduleStatus.STOPPED
            ),
            # The model retrains weekly (Mondays 07:00), independent of the daily sales runs.
            dg.ScheduleDefinition(
                job=ml_training,
                cron_schedule="0 7 * * 1",
                execution_timezone=timezone,
                default_status=dg.DefaultScheduleStatus.STOPPED,
            ),
        ]
    )
