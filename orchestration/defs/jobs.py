"""The jobs the schedules and sensors start: each selects one dataflow's asset group.

Each job bounds its runs (`dagster/max_runtime`, seconds): run monitoring fails a run still going
after that long, so a run whose process was killed outside a run launcher's sight (a CLI run) does
not stay STARTED forever. Each limit is far above the job's longest expected run: hours-long runs
are legitimate, and the limit is per job, not one for the instance (docs/deployment.md).
"""

import dagster as dg

HOUR_S = 3600
sales_daily = dg.define_asset_job(
    "sales_daily",
    selection=dg.AssetSelection.groups("sales_analytics"),
    tags={"dagster/max_runtime": str(6 * HOUR_S)},
)
ml_training = dg.define_asset_job(
    "ml_training",
    selection=dg.AssetSelection.groups("ml_pipeline"),
    tags={"dagster/max_runtime": str(4 * HOUR_S)},
)
