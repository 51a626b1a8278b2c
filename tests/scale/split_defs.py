"""Jobs over the grouped dataflow split into one step per group, run by other processes (the
multiprocess and Celery executors import this module in each step's process)."""

import dagster as dg
from dagster_celery import celery_executor

from orchestration.assets import hamilton_assets_by_group
from tests.scale import grouped_flow

defs = dg.Definitions(
    assets=hamilton_assets_by_group(grouped_flow),
    jobs=[
        dg.define_asset_job("multiprocess", executor_def=dg.multiprocess_executor),
        dg.define_asset_job("celery", executor_def=celery_executor),
    ],
)


def multiprocess_job() -> dg.JobDefinition:
    return defs.resolve_job_def("multiprocess")


def celery_job() -> dg.JobDefinition:
    return defs.resolve_job_def("celery")
