"""Definitions for the killed-run test, loaded by the `dagster` CLI in a subprocess."""

import dagster as dg

from orchestration import hamilton_assets
from orchestration.lineage.runs import lineage_sensors
from tests.lineage import killed_flow

defs = dg.Definitions(assets=[hamilton_assets(killed_flow)], sensors=lineage_sensors())
