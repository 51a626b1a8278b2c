"""Definitions for the concurrent half of the many-runs test, loaded by `dagster asset materialize`:
the small dataflow, its step in the run's own process (one process per run)."""

import dagster as dg

from orchestration import hamilton_assets
from tests.faults import many_flow

defs = dg.Definitions(assets=[hamilton_assets(many_flow)], executor=dg.in_process_executor)
