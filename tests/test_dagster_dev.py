"""`dagster dev` for real: webserver and daemon on a free loopback port, driven over GraphQL."""

import time

import pytest

from tests.support.dagster_dev import dagster_dev_fixture  # noqa: F401  (the `dagster_dev` fixture)

pytestmark = pytest.mark.services  # `dagster dev`


def test_the_ui_shows_every_asset_with_description_group_code_version_and_kinds(dagster_dev):
    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } description groupName opVersion kinds } }")[
        "assetNodes"
    ]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {"sales_report", "clean_sales", "trained_model", "evaluation_metrics"} <= set(by_key)
    report = by_key["sales_report"]
    assert report["groupName"] == "sales_analytics"
    assert report["description"].startswith("Markdown report")
    assert len(report["opVersion"]) == 64
    assert "hamilton" in report["kinds"]


def test_a_run_launched_from_the_ui_materializes_with_progress(dagster_dev):
    run_id = dagster_dev.launch_run([["raw_dataset"], ["target"]])
    status = dagster_dev.wait_for_run(run_id, timeout_s=180)
    messages = dagster_dev.run_messages(run_id)
    assert status == "SUCCESS", messages
    progress = dagster_dev.materialization_progress(run_id)
    assert [m.split(" done in ")[0] for m in progress] == ["[1/2 50%] raw_dataset", "[2/2 100%] target"]
    assert any(
        m.startswith("Computing 2 asset(s) of ml_pipeline; progress and ETA weighted by") for m in messages
    )


def runs_for_file(dagster_dev, name: str) -> list[dict]:
    return dagster_dev.runs_with_tag("landing/file", name)


def test_a_landed_file_is_run_once_by_the_sensor(dagster_dev):
    from hamilton_pipelines.sample_data import write_sample_sales

    [path] = write_sample_sales(dagster_dev.landing, days=1, rows_per_day=50, start="2026-01-05")
    deadline = time.monotonic() + 240
    while True:
        runs = runs_for_file(dagster_dev, path.name)
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"no finished sensor run for {path.name}: {runs}"
        time.sleep(1)
    assert [r["status"] for r in runs] == ["SUCCESS"]
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["dagster/partition"] == "2026-01-05"

    write_sample_sales(dagster_dev.landing, days=1, rows_per_day=50, start="2026-01-05")  # same bytes
    time.sleep(8)  # several sensor ticks
    assert len(runs_for_file(dagster_dev, path.name)) == 1


def test_a_backfill_from_the_ui_is_one_run_over_its_range(dagster_dev):
    """The sales assets have BackfillPolicy.single_run(): the daemon launches one run per range."""
    from hamilton_pipelines.sample_data import write_sample_sales

    write_sample_sales(dagster_dev.landing, days=2, rows_per_day=50, start="2026-01-02")
    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    sales = [{"path": n["assetKey"]["path"]} for n in nodes if n["groupName"] == "sales_analytics"]
    launched = dagster_dev.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"params": {"assetSelection": sales, "partitionNames": ["2026-01-02", "2026-01-03"]}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 300
    while True:
        runs = dagster_dev.runs_with_tag("dagster/backfill", launched["backfillId"])
        if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            break
        assert time.monotonic() < deadline, f"backfill runs not finished: {runs}"
        time.sleep(1)
    assert [r["status"] for r in runs] == ["SUCCESS"]
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        "2026-01-02",
        "2026-01-03",
    )
    stored = dagster_dev.landing.parent / "assets" / "sales_report"
    assert {"partition=2026-01-02.txt", "partition=2026-01-03.txt"} <= {p.name for p in stored.iterdir()}
