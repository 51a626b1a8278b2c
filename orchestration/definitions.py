"""The project's Dagster definitions: the shipped dataflows as assets (loaded by workspace.yaml)."""

import dagster as dg

from hamilton_pipelines import ml_pipeline, sales_analytics
from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import hamilton_assets
from orchestration.lineage_hooks import lineage_sensors
from orchestration.paths import landing_dir


def _landing_dir_with_sample_data() -> str:
    """The landing folder; on a fresh checkout it gets a week of generated sample sales."""
    landing = landing_dir()
    if not landing.exists():
        write_sample_sales(landing)
    return str(landing)


sales_assets = hamilton_assets(
    sales_analytics,
    config={"sales_scope": "all", "landing_dir": _landing_dir_with_sample_data()},
)
ml_assets = hamilton_assets(ml_pipeline)

defs = dg.Definitions(assets=[sales_assets, ml_assets], sensors=lineage_sensors())
