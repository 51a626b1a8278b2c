"""Definitions for the live-progress test on `dagster dev`: the slow chain as one multi-asset, with
the default executor (a process per step) and the lineage sensors (a canceled run gets ABORT)."""

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from tests.live import slow_flow

defs = dg.Definitions(assets=[hamilton_assets(slow_flow)], sensors=lineage_sensors())
