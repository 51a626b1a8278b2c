"""Definitions for the killed-worker test, loaded by `dagster dev` (default executor: a process
per step) with the lineage sensors, as the shipped definitions have them."""

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage_hooks import lineage_sensors
from tests.faults import kill_flow

defs = dg.Definitions(assets=[hamilton_assets(kill_flow)], sensors=lineage_sensors())
