"""The code location of the infrastructure-fault tests: the slow dataflow as assets, two jobs
over it with different runtime limits, and a sensor that requests one run per file dropped in
`$FAULT_DROP_DIR` (its run key is the file's name, as the landing sensor's is)."""

import os
from pathlib import Path

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from tests.deploy import fault_flow

assets = hamilton_assets(fault_flow)
# Hours-long runs are what this product is for: a limit per job, not one for the instance.
steady = dg.define_asset_job("steady", selection="*", tags={"dagster/max_runtime": "3600"})
short_lived = dg.define_asset_job("short_lived", selection="*", tags={"dagster/max_runtime": "20"})


@dg.sensor(job=steady, minimum_interval_seconds=2, default_status=dg.DefaultSensorStatus.RUNNING)
def dropped_files(context: dg.SensorEvaluationContext):
    folder = Path(os.environ["FAULT_DROP_DIR"])
    for path in sorted(folder.glob("*.request")):
        yield dg.RunRequest(run_key=path.name)


defs = dg.Definitions(
    assets=[assets], jobs=[steady, short_lived], sensors=[dropped_files, *lineage_sensors()]
)
