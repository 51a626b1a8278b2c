"""A reconstructable job over counting_flow, for re-execution tests (execute_job needs one)."""

import dagster as dg

from orchestration import hamilton_assets
from tests.orchestration import counting_flow

defs = dg.Definitions(
    assets=[hamilton_assets(counting_flow)],
    jobs=[dg.define_asset_job("counting", executor_def=dg.in_process_executor)],
)


def counting_job() -> dg.JobDefinition:
    return defs.resolve_job_def("counting")
