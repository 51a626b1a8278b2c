"""Materializing Hamilton assets: subsets, loads, failures, re-execution, checks, progress."""

import re

import dagster as dg
import pandas as pd
import pytest

from orchestration import ValueStore, hamilton_assets
from tests.conftest import step_failure
from tests.orchestration import counting_flow


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.delenv("FAIL_NODE", raising=False)
    counting_flow.CALLS.clear()
    return hamilton_assets(counting_flow)


def materialized_keys(result) -> list[str]:
    return [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]


def progress_lines(instance, run_id) -> list[str]:
    """The `[k/N pct%] … done in …` line each materialization carries in its metadata."""
    return [
        entry.asset_materialization.metadata["progress"].value
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    ]


def log_lines(instance, run_id, pattern: str) -> list[str]:
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.user_message and re.match(pattern, e.user_message)
    ]


def test_full_run_streams_assets_in_topological_order_and_stores_them(counting, data_dir, instance):
    result = dg.materialize([counting], instance=instance)
    assert result.success
    assert materialized_keys(result) == ["source", "table", "total", "doubled", "summary"]
    store = ValueStore(data_dir / "assets")
    assert store.read(dg.AssetKey("summary")) == {"sum": 56, "rows": 4}
    pd.testing.assert_series_equal(
        store.read(dg.AssetKey("doubled")), pd.Series([8, 12, 16, 20], name="total")
    )
    lines = progress_lines(instance, result.run_id)
    assert len(lines) == 5
    assert lines[0].startswith("[1/5 20%] source done in ")
    assert lines[-1].startswith("[5/5 100%] summary done in ")
    assert "(rows=4)" in lines[0] and "(rows=-)" in lines[-1] and "ETA" in lines[0]
    assert log_lines(instance, result.run_id, r"^\[\d+/") == []  # quick nodes: no run-log line each


def test_materialization_metadata(counting, data_dir, instance):
    result = dg.materialize([counting], instance=instance)
    events = {
        e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()
    }
    table = events["table"].metadata
    assert table["dagster/row_count"].value == 4
    assert [c.name for c in table["dagster/column_schema"].schema.columns] == ["x", "y"]
    assert table["path"].value == str(data_dir / "assets" / "table" / "value.parquet")
    assert table["duration_s"].value >= 0
    assert "| x | y |" in table["preview"].value


def test_subset_runs_only_the_selected_nodes_and_loads_upstream(counting, data_dir, instance):
    assert dg.materialize([counting], instance=instance).success
    counting_flow.CALLS.clear()

    result = dg.materialize([counting], instance=instance, selection=["doubled", "summary"])

    assert result.success
    assert counting_flow.CALLS == ["doubled", "summary"]  # total and table loaded, not recomputed
    assert materialized_keys(result) == ["doubled", "summary"]
    assert [line[:10] for line in progress_lines(instance, result.run_id)] == ["[1/2 50%] ", "[2/2 100%]"]


def test_columns_of_an_unselected_parent_come_from_its_stored_value(counting, data_dir, instance):
    assert dg.materialize([counting], instance=instance).success
    counting_flow.CALLS.clear()
    assert dg.materialize([counting], instance=instance, selection=["total"]).success
    assert counting_flow.CALLS == ["total"]  # x and y extracted from the stored table


def test_missing_upstream_fails_naming_the_asset_and_the_fix(counting, data_dir, instance):
    result = dg.materialize([counting], instance=instance, selection=["doubled"], raise_on_error=False)
    assert not result.success
    message = step_failure(result)
    assert "Asset total has never been materialized" in message
    assert "dagster asset materialize --select total" in message
    assert counting_flow.CALLS == []


def test_failing_node_keeps_finished_assets_and_names_the_node(counting, data_dir, instance, monkeypatch):
    monkeypatch.setenv("FAIL_NODE", "total")
    result = dg.materialize([counting], instance=instance, raise_on_error=False)
    assert not result.success
    message = step_failure(result)
    assert (
        "Hamilton node 'total' (asset total) failed: RuntimeError: total cannot be computed today" in message
    )
    assert 'raise RuntimeError("total cannot be computed today")' in message  # original traceback
    assert materialized_keys(result) == ["source", "table"]
    store = ValueStore(data_dir / "assets")
    assert store.exists(dg.AssetKey("table")) and not store.exists(dg.AssetKey("doubled"))
    assert counting_flow.CALLS == ["source", "table", "total"]  # nothing downstream ran


def test_reexecution_from_asset_failure_recomputes_only_what_failed(data_dir, instance, monkeypatch):
    from tests.orchestration import counting_job

    counting_flow.CALLS.clear()
    monkeypatch.setenv("FAIL_NODE", "total")
    job = dg.reconstructable(counting_job.counting_job)
    first = dg.execute_job(job, instance)
    assert not first.success

    monkeypatch.delenv("FAIL_NODE")
    counting_flow.CALLS.clear()
    planned = {dg.AssetKey(k) for k in ["source", "table", "total", "doubled", "summary"]}
    done = {e.asset_key for e in first.get_asset_materialization_events()}
    second = dg.execute_job(
        job,
        instance,
        asset_selection=sorted(planned - done, key=str),
        tags={"dagster/parent_run_id": first.run_id, "dagster/root_run_id": first.run_id},
    )

    assert second.success
    assert counting_flow.CALLS == ["total", "doubled", "summary"]
    assert [e.asset_key.to_user_string() for e in second.get_asset_materialization_events()] == [
        "total",
        "doubled",
        "summary",
    ]


def test_run_config_sets_external_inputs(counting, data_dir, instance):
    result = dg.materialize(
        [counting],
        instance=instance,
        run_config={"ops": {"counting_flow": {"config": {"rows": 6}}}},
    )
    assert result.success
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("summary")) == {
        "sum": 2 * sum(range(12)),
        "rows": 6,
    }


def test_run_config_rejects_unknown_keys_and_wrong_types(counting, data_dir, instance):
    with pytest.raises(dg.DagsterInvalidConfigError, match="rowz"):
        dg.materialize(
            [counting], instance=instance, run_config={"ops": {"counting_flow": {"config": {"rowz": 6}}}}
        )
    with pytest.raises(dg.DagsterInvalidConfigError, match="rows"):
        dg.materialize(
            [counting], instance=instance, run_config={"ops": {"counting_flow": {"config": {"rows": "six"}}}}
        )


def test_progress_callbacks_get_step_percent_and_message(data_dir, instance):
    calls = []
    assets = hamilton_assets(counting_flow, progress_callbacks=[lambda *args: calls.append(args)])
    assert dg.materialize([assets], instance=instance).success
    assets_in_order = ["source", "table", "total", "doubled", "summary"]
    expected = []
    for done, asset in enumerate(assets_in_order):
        expected += [(asset, 20 * done, f"Executing {asset} [{done}/5 {20 * done}%]")]
        expected += [(asset, 20 * (done + 1), f"[{done + 1}/5 {20 * (done + 1)}%] {asset} done in")]
    assert [
        (step, round(percent), message[: len(text)])
        for (step, percent, message), (_, _, text) in zip(calls, expected)
    ] == expected
    assert len(calls) == 10


CHECKED_FLOW = '''
import os
import pandas as pd
from hamilton.function_modifiers import check_output


@check_output(range=(0.0, 10.0), importance="warn")
def ratio() -> pd.Series:
    """Warns when out of range."""
    return pd.Series([float(os.environ.get("RATIO", "1"))])


@check_output(range=(0.0, 100.0), importance="fail")
def amount(ratio: pd.Series) -> pd.Series:
    """Fails when out of range."""
    return ratio * float(os.environ.get("FACTOR", "1"))
'''


def check_results(result) -> dict[str, bool]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_warn_check_failure_records_a_failed_check_but_the_run_succeeds(
    make_module, data_dir, instance, monkeypatch
):
    monkeypatch.setenv("RATIO", "50")
    result = dg.materialize([hamilton_assets(make_module(CHECKED_FLOW))], instance=instance)
    assert result.success
    assert check_results(result) == {"ratio:range_validator": False, "amount:range_validator": True}


def test_fail_check_failure_fails_the_run_and_keeps_the_old_value(
    make_module, data_dir, instance, monkeypatch
):
    assets = hamilton_assets(make_module(CHECKED_FLOW))
    assert dg.materialize([assets], instance=instance).success
    monkeypatch.setenv("FACTOR", "1000")
    result = dg.materialize([assets], instance=instance, raise_on_error=False)
    assert not result.success
    assert check_results(result) == {"ratio:range_validator": True, "amount:range_validator": False}
    assert "Hamilton node 'amount'" in step_failure(result)
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("amount")).tolist() == [1.0]


def test_a_fail_check_failing_in_a_range_run_fails_naming_the_partition(
    make_module, data_dir, instance, monkeypatch
):
    flow = CHECKED_FLOW.replace("def ratio()", "def ratio(day: str)")
    assets = hamilton_assets(
        make_module(flow),
        partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),
        partition_input="day",
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    monkeypatch.setenv("FACTOR", "1000")
    tags = {
        "dagster/asset_partition_range_start": "2026-01-02",
        "dagster/asset_partition_range_end": "2026-01-03",
    }
    result = dg.materialize([assets], instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    assert "Partition 2026-01-02 of 2026-01-02...2026-01-03" in step_failure(result)
    assert "Hamilton node 'amount'" in step_failure(result)


def test_a_value_without_a_safe_format_fails_naming_the_node(make_module, data_dir, instance):
    flow = make_module("class Blob:\n    pass\n\ndef blob() -> Blob:\n    return Blob()\n")
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    assert not result.success
    message = step_failure(result)
    assert "Node 'blob'" in message and "no safe storage format" in message
    assert not (data_dir / "assets" / "blob").exists() or not any((data_dir / "assets" / "blob").iterdir())


PARTITIONED_FLOW = '''
import pandas as pd


def orders(day: str) -> pd.DataFrame:
    """One day's orders."""
    return pd.DataFrame({"day": [day], "amount": [float(day[-2:])]})


def total(orders: pd.DataFrame) -> float:
    """That day's total."""
    return float(orders["amount"].sum())
'''


def test_each_partition_gets_its_key_as_input_and_its_own_stored_value(make_module, data_dir, instance):
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assets = hamilton_assets(make_module(PARTITIONED_FLOW), partitions_def=daily, partition_input="day")
    assert "day" not in assets.op.config_schema.config_type.fields
    for day in ("2026-01-02", "2026-01-05"):
        assert dg.materialize([assets], instance=instance, partition_key=day).success
    store = ValueStore(data_dir / "assets")
    assert store.read(dg.AssetKey("total"), "2026-01-02") == 2.0
    assert store.read(dg.AssetKey("total"), "2026-01-05") == 5.0
    assert store.read(dg.AssetKey("orders"), "2026-01-05")["day"].tolist() == ["2026-01-05"]


def test_partition_input_must_name_an_input(make_module):
    from orchestration import DataflowError

    with pytest.raises(DataflowError, match="partition_input='date'.*inputs are: day"):
        hamilton_assets(
            make_module(PARTITIONED_FLOW),
            partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),
            partition_input="date",
        )


FLAKY_FLOW = '''
import os
from pathlib import Path


def source() -> int:
    """Fine."""
    return 1


def flaky(source: int) -> int:
    """Fails on the first try only (a marker file remembers the try)."""
    marker = Path(os.environ["FLAKY_MARKER"])
    if not marker.exists():
        marker.write_text("tried")
        raise ConnectionError("upstream API hiccup")
    return source + 1
'''


def test_a_retried_step_succeeds_and_lineage_shows_one_clean_run(
    make_module, data_dir, instance, monkeypatch, tmp_path
):
    from tests.lineage.test_events import read_events

    monkeypatch.setenv("FLAKY_MARKER", str(tmp_path / "tried"))
    assets = hamilton_assets(make_module(FLAKY_FLOW), retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
    result = dg.materialize([assets], instance=instance)

    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("flaky")) == 2
    states = [(e["job"]["name"].split(".")[-1], e["eventType"]) for e in read_events(data_dir)]
    assert states.count(("flaky", "START")) == 1 and states.count(("flaky", "COMPLETE")) == 1
    assert ("flaky", "FAIL") not in states  # a failure that is retried is not the asset's end
