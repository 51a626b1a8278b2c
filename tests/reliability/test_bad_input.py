"""Bad input the existing tests did not cover yet: each case gets one clear error (a warning where
the feature is optional) that names the culprit and the fix, and nothing already stored is lost.

Already covered elsewhere (not repeated here; see docs/reliability.md):
- each bad CSV read directly: tests/hamilton_pipelines/test_sales_files.py;
- bad names, wrong schemas and absolute links out of the landing directory in the sensor:
  tests/orchestration/test_landing_sensor.py;
- run config with unknown keys or wrong types: tests/orchestration/test_execution.py;
- missing dependencies, type mismatches, duplicates, invalid key characters, deep chains:
  tests/orchestration/test_bad_dataflows.py;
- unparseable/wrongly structured OpenLineage configuration keeps events spooled, and a down or hung
  Pushgateway: tests/lineage/test_delivery.py, tests/monitoring/test_metrics.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from hamilton_pipelines import ml_pipeline, sales_analytics
from hamilton_pipelines.sales_files import sales_date_of, sales_file_problem
from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import DataflowError, ValueStore, hamilton_assets
from orchestration.lineage.delivery import LineageSpool
from orchestration.ops.landing_sensor import landing_sensor
from tests.conftest import step_failure

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")
DAY = "2026-01-01"
HEADER = "order_id,order_date,region,product,quantity,unit_price,customer_id\n"


def stored_files(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "assets"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def step_failures(result) -> list:
    return [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


# -- landed CSV files, through a real run ----------------------------------------------------------

BAD_FILES = [
    ("empty", b"", "is empty; re-export it with a header and rows"),
    ("header only", HEADER.encode(), "has a header but no rows; re-export that day's sales"),
    ("not UTF-8", (HEADER + f"1,{DAY},M\xfcnchen,Beans,3,4.5,c1\n").encode("latin-1"), "is not UTF-8"),
    ("wrong schema", b"order_id,region\n1,North\n", "lacks required columns ['order_date'"),
    (
        "wrong type",
        (HEADER + f"1,{DAY},North,Beans,three,4.5,c1\n").encode(),
        "'quantity' must be numeric, but row 2 holds 'three'; fix the export",
    ),
    ("missing", None, "does not exist; check landing_dir and sales_date, or land the file first"),
    pytest.param(
        "malformed",
        (HEADER + f'1,"{DAY},North\n').encode(),
        "cannot be read as CSV",
    ),
]
FIXES = ("re-export", "fix the export", "land the file first")


@pytest.mark.parametrize("case, content, problem", BAD_FILES)
def test_a_bad_landed_file_fails_the_day_once_naming_it_and_keeps_what_was_stored(
    case, content, problem, data_dir, instance
):
    landing = data_dir / "landing"
    [path] = write_sample_sales(landing, days=1, rows_per_day=20, start=DAY)
    sales = hamilton_assets(
        sales_analytics,
        config={"sales_scope": "daily", "landing_dir": str(landing)},
        partitions_def=DAILY,
        partition_input="sales_date",
    )
    assert dg.materialize([sales], instance=instance, partition_key=DAY).success
    before = stored_files(data_dir)
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)

    result = dg.materialize([sales], instance=instance, partition_key=DAY, raise_on_error=False)

    assert not result.success
    assert len(step_failures(result)) == 1
    headline = step_failure(result).splitlines()[0]
    assert "Hamilton node 'raw_sales' (asset raw_sales) failed: SalesFileError: " in headline
    assert str(path) in headline and problem in headline
    assert any(fix in headline for fix in FIXES), headline
    assert result.get_asset_materialization_events() == []
    assert stored_files(data_dir) == before  # every stored value, byte for byte


# -- landing file names and links ----------------------------------------------------------------


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def sensor(landing):
    job = dg.define_asset_job("sales_daily", selection="*")
    return landing_sensor(job, sales_date_of, sales_file_problem, DAILY, folder=lambda: landing)


def tick(sensor, instance, cursor=None):
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    return result, result.cursor


BAD_NAMES = [
    "sales 2026-01-01.csv",
    "sales_2026-01-01 .csv",
    "sales_2026-01-01.csv ",
    " sales_2026-01-01.csv",
    "sales_\uff12\uff10\uff12\uff16-01-01.csv",  # full-width digits
    "sales_2026-01-0\u0661.csv",  # an Arabic-Indic digit
    "s\u00e4les_2026-01-01.csv",
    "sales_2026-01-01.csv..",
    "sales_..csv",
    "sales_2026-01-01.CSV",
]


def test_names_with_spaces_unicode_or_dots_are_reported_and_never_run(sensor, landing, instance):
    [good] = write_sample_sales(landing, days=1, rows_per_day=20, start="2026-01-02")
    for name in BAD_NAMES:
        (landing / name).write_bytes(good.read_bytes())

    first, cursor = tick(sensor, instance)
    again, _ = tick(sensor, instance, cursor)

    assert [r.tags["landing/file"] for r in first.run_requests] == [good.name]
    reason = again.skip_reason.skip_message
    for name in BAD_NAMES:
        assert f"{name}: name does not match the expected pattern" in reason, name


def test_a_name_with_a_trailing_newline_is_not_taken_for_the_day(sensor, landing, instance):
    [good] = write_sample_sales(landing, days=1, rows_per_day=20, start=DAY)
    (landing / "sales_2026-01-01.csv\n").write_bytes(good.read_bytes().replace(b"North", b"South"))

    result, _ = tick(sensor, instance)

    assert [r.tags["landing/file"] for r in result.run_requests] == [good.name]


def test_links_are_followed_only_inside_the_landing_directory(sensor, landing, instance, tmp_path):
    outside = tmp_path / "outside"
    write_sample_sales(outside, days=1, rows_per_day=20, start="2026-01-03")
    [inside] = write_sample_sales(landing, days=1, rows_per_day=20, start="2026-01-02")
    (landing / "archive").mkdir()
    write_sample_sales(landing / "archive", days=1, rows_per_day=20, start="2026-01-05")
    (landing / "sales_2026-01-03.csv").symlink_to("../outside/sales_2026-01-03.csv")  # `..` climbs out
    (landing / "sales_2026-01-04.csv").symlink_to(inside.name)  # a sibling: fine
    (landing / "sales_2026-01-05.csv").symlink_to("archive/sales_2026-01-05.csv")  # a subfolder
    (landing / "sales_2026-01-06.csv").symlink_to("does-not-exist.csv")

    first, cursor = tick(sensor, instance)
    again, _ = tick(sensor, instance, cursor)

    assert sorted(r.partition_key for r in first.run_requests) == ["2026-01-02", "2026-01-04"]
    reason = again.skip_reason.skip_message
    assert "sales_2026-01-03.csv: points outside the landing directory" in reason
    assert "sales_2026-01-05.csv: points outside the landing directory" in reason
    assert "sales_2026-01-06.csv: broken link; refused" in reason


def test_a_link_loop_is_reported_and_does_not_stop_the_other_files(sensor, landing, instance):
    [good] = write_sample_sales(landing, days=1, rows_per_day=20, start="2026-01-02")
    loop = landing / "sales_2026-01-03.csv"
    loop.symlink_to(loop.name)

    first, cursor = tick(sensor, instance)
    again, _ = tick(sensor, instance, cursor)

    assert [r.tags["landing/file"] for r in first.run_requests] == [good.name]
    assert "sales_2026-01-03.csv" in again.skip_reason.skip_message


# -- run config ---------------------------------------------------------------------------------


def test_an_out_of_range_run_config_value_fails_naming_the_node_and_range_and_keeps_the_split(
    data_dir, instance
):
    ml = hamilton_assets(ml_pipeline)
    assert dg.materialize([ml], instance=instance).success
    before = stored_files(data_dir)

    result = dg.materialize(
        [ml],
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"ml_pipeline": {"config": {"test_size": 1.5}}}},
    )

    assert not result.success and len(step_failures(result)) == 1
    headline = step_failure(result).splitlines()[0]
    assert "Hamilton node 'train_test_data' (asset train_test_data) failed" in headline
    assert "'test_size'" in headline and "range (0.0, 1.0)" in headline and "Got 1.5" in headline
    assert stored_files(data_dir) == before


def test_a_partition_outside_the_range_is_refused_before_anything_runs(make_module, data_dir, instance):
    flow = make_module("def orders(day: str) -> str:\n    return day\n")
    assets = hamilton_assets(flow, partitions_def=DAILY, partition_input="day")
    with pytest.raises(dg.DagsterUnknownPartitionError, match="1999-01-01"):
        dg.materialize([assets], instance=instance, partition_key="1999-01-01")
    assert not (data_dir / "assets").exists() and instance.get_runs() == []


# -- dataflows --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["input", "type", "config"])
def test_a_function_with_a_dagster_reserved_name_is_refused_naming_it_and_the_fix(make_module, name):
    flow = make_module(f"def {name}() -> int:\n    return 1\n")
    with pytest.raises(DataflowError) as error:
        hamilton_assets(flow)
    assert f"'{name}'" in str(error.value) and "Fix:" in str(error.value)


# -- OpenLineage configuration (optional: a warning, the run is unaffected) ------------------------


@pytest.fixture
def lineage_config(data_dir, monkeypatch, tmp_path):
    """An OpenLineage config file of the test's choosing, and no other OpenLineage setting."""
    import os

    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    path = tmp_path / "openlineage.yml"
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(path))
    yield path
    spool = LineageSpool(data_dir / "lineage" / "spool")
    spool.delete([event_id for event_id, _ in spool.pending()])


def config_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "OpenLineage configuration problem" in r.getMessage()
    ]


SMALL_FLOW = "def one() -> int:\n    return 1\n"


def test_an_unparseable_openlineage_config_warns_once_naming_the_file_and_line(
    make_module, data_dir, instance, lineage_config, caplog
):
    lineage_config.write_text("transport:\n  type: http\n  url: [http://127.0.0.1:1\n")
    assets = hamilton_assets(make_module(SMALL_FLOW))

    with caplog.at_level(logging.WARNING):
        first = dg.materialize([assets], instance=instance)
        second = dg.materialize([assets], instance=instance)

    assert first.success and second.success
    [warning] = config_warnings(caplog)
    assert str(lineage_config) in warning and "line 3" in warning
    assert len(LineageSpool(data_dir / "lineage" / "spool").pending()) > 0  # kept, not lost


def test_a_wrongly_structured_openlineage_config_warns_naming_the_file(
    make_module, data_dir, instance, lineage_config, caplog
):
    lineage_config.write_text("transport: [1, 2]\n")
    assets = hamilton_assets(make_module(SMALL_FLOW))

    with caplog.at_level(logging.WARNING):
        assert dg.materialize([assets], instance=instance).success

    [warning] = config_warnings(caplog)
    assert str(lineage_config) in warning


# -- Pushgateway URL (optional: one warning in the run log, the run is unaffected) ---------------------


@pytest.mark.parametrize(
    "url, named",
    [
        ("http://metrics:pw@127.0.0.1:notaport", "http://127.0.0.1:notaport"),
        ("metrics:pw@127.0.0.1:1", "http://127.0.0.1:1"),  # no scheme: http is assumed
        ("http://metrics:pw@[::1", "PROMETHEUS_PUSHGATEWAY_URL"),
    ],
)
def test_a_wrong_pushgateway_url_gives_one_run_log_warning_naming_it(
    url, named, make_module, data_dir, instance, monkeypatch
):
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    monkeypatch.setenv("PROMETHEUS_PUSHGATEWAY_URL", url)

    result = dg.materialize([hamilton_assets(make_module(SMALL_FLOW))], instance=instance)

    assert result.success
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("one")) == 1
    warnings = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level == logging.WARNING and "pushgateway" in (e.user_message or "").lower()
    ]
    assert len(warnings) == 1 and named in warnings[0] and "pw" not in warnings[0]
