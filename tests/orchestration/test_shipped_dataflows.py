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
        driver.Builder()
        .with_modules(sales_analytics)
        .with_config(config)
        .build()
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
        [ml],
        instance=instance,
        selection=[
            "raw_dataset",
            "target",
            "phenol_ratio",
            "color_hue_ratio",
            "log_proline",
            "feature_matrix",
            "train_test_data",
        ],
        run_config={"ops": {"ml_pipeline": {"config": {"test_size": 0.5}}}},
    )
    assert result.success
    split = ValueStore(data_dir / "assets").read(dg.AssetKey("train_test_data"))
    assert len(split["test_features"]) == 89 and len(split["train_features"]) == 89


def test_a_date_range_runs_in_one_step_and_records_each_day(data_dir, instance):
    landing = data_dir / "landing"
    write_sample_sales(landing, days=3, rows_per_day=40, start="2026-01-02")
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    sales = hamilton_assets(
        sales_analytics,
        config={"sales_scope": "daily", "landing_dir": str(landing)},
        partitions_def=daily,
        partition_input="sales_date",
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    days = ["2026-01-02", "2026-01-03", "2026-01-04"]

    result = dg.materialize(
        [sales],
        instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )

    assert result.success
    assert len(result.get_step_success_events()) == 1
    report = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["sales_report"]]
    assert sorted(e.partition for e in report) == days
    store = ValueStore(data_dir / "assets")
    for day in days:
        expected = (
            driver.Builder()
            .with_modules(sales_analytics)
            .with_config({"sales_scope": "daily"})
            .build()
            .execute(["clean_sales"], inputs={"landing_dir": str(landing), "sales_date": day})
        )["clean_sales"]
        stored = store.read(dg.AssetKey("clean_sales"), day)
        pd.testing.assert_frame_equal(stored.reset_index(drop=True), expected.reset_index(drop=True))
        [event] = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["clean_sales"] and e.partition == day
        ]
        assert event.materialization.metadata["dagster/row_count"].value == len(expected)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert {c.check_name for c in checks} == {c.name for c in sales.check_specs}
    n = len(sales.keys) * len(days)
    lines = [
        e.asset_materialization.metadata["progress"].value
        for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    ]
    assert len(lines) == n and f"[{n}/{n} 100%] sales_report [2026-01-04]" in {
        line.split(" done in")[0] for line in lines
    }
