"""Definitions for the tests on `dagster dev` (tests/faults/test_killed_worker.py), with the default
executor (a process per step) and the lineage sensors, as the shipped definitions have them: the
killed-worker chain, and the partitioned dataflow of the concurrency tests."""

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from tests.faults import concurrent_flow, kill_flow
from tests.faults.concurrent_defs import PARTITIONS

defs = dg.Definitions(
    assets=[
        hamilton_assets(kill_flow),
        hamilton_assets(
            concurrent_flow,
            partitions_def=dg.StaticPartitionsDefinition(PARTITIONS),
            partition_input="partition",
        ),
    ],
    sensors=lineage_sensors(),
)
