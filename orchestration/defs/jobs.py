"""The jobs the schedules and sensors start: each selects one dataflow's asset group."""

import dagster as dg

sales_daily = dg.define_asset_job("sales_daily", selection=dg.AssetSelection.groups("sales_analytics"))
ml_training = dg.define_asset_job("ml_training", selection=dg.AssetSelection.groups("ml_pipeline"))
