"""Definitions for the concurrency tests, loaded by `dagster asset materialize` in subprocesses:
the dataflow's step claims a slot of the pool `faults_store` (unlimited until a test sets a limit).
The step runs in the run's own process (in-process executor): one process per run instead of two
halves the CPU the test needs on a 2-CPU machine; the instance and the store see the same writers."""

import dagster as dg

from orchestration import hamilton_assets
from tests.faults import concurrent_flow

PARTITIONS = [f"p{i}" for i in range(1, 5)]

defs = dg.Definitions(
    assets=[
        hamilton_assets(
            concurrent_flow,
            partitions_def=dg.StaticPartitionsDefinition(PARTITIONS),
            partition_input="partition",
            pool="faults_store",
        )
    ],
    executor=dg.in_process_executor,
)
