"""The shipped dataflows end to end, on an on-disk instance, against plain Hamilton."""

import dagster as dg
import pandas as pd
from hamilton import driver

from hamilton_pipelines import ml_pipeline, sales_analytics
from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import ValueStore, hamilton_assets


def test_sales_and_ml_dataflows_materialize_and_match_plain_hamilton(data_dir, instance):
    landing = data_dir / "landing"
    write_sample_sales(landing, days=3, rows_per_day=200)
    config = {"sales_scope": "all", "landing_dir": str(landing)}
    sales = hamilton_assets(sales_analytics, config=config)
    ml = hamilton_assets(ml_pipeline)

    result = dg.materialize([sales, ml], instance=instance)

    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {k.to_user_string() for k in [*sales.keys, *ml.keys]}
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 3

    expected = (
        driver.Builder().with_modules(sales_analytics).with_config(config).build()
        .execute(["sales_report", "region_summary", "business_metrics"])
    )
    store = ValueStore(data_dir / "assets")
    assert store.read(dg.AssetKey("sales_report")) == expected["sales_report"]
    assert store.read(dg.AssetKey("business_metrics")) == expected["business_metrics"]
    pd.testing.assert_frame_equal(store.read(dg.AssetKey("region_summary")), expected["region_summary"])

    metrics = store.read(dg.AssetKey("evaluation_metrics"))
    assert metrics["accuracy"] > 0.9
    model = store.read(dg.AssetKey("trained_model"))
    split = store.read(dg.AssetKey("train_test_data"))
    assert model.predict(split["test_features"]).tolist() == store.read(dg.AssetKey("predictions")).tolist()


def test_ml_run_config_changes_the_split(data_dir, instance):
    ml = hamilton_assets(ml_pipeline)
    result = dg.materialize(
        [ml], instance=instance, selection=["raw_dataset", "target", "phenol_ratio", "color_hue_ratio",
                                            "log_proline", "feature_matrix", "train_test_data"],
        run_config={"ops": {"ml_pipeline": {"config": {"test_size": 0.5}}}},
    )
    assert result.success
    split = ValueStore(data_dir / "assets").read(dg.AssetKey("train_test_data"))
    assert len(split["test_features"]) == 89 and len(split["train_features"]) == 89
