"""The landing sensor: one run request per new file version, bad files reported, never a crash."""

import os

import dagster as dg
import pytest

from hamilton_pipelines.sales_files import sales_date_of, sales_file_problem
from hamilton_pipelines.sample_data import write_sample_sales
from orchestration.ops.landing_sensor import landing_sensor

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def sensor(landing):
    job = dg.define_asset_job("sales_daily", selection="*")
    return landing_sensor(job, sales_date_of, sales_file_problem, DAILY, folder=lambda: landing)


def tick(sensor, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = sensor(context)
    return result, result.cursor


def test_each_landed_file_requests_one_run_for_its_day(sensor, landing, instance):
    write_sample_sales(landing, days=2, rows_per_day=20)
    result, cursor = tick(sensor, instance)
    assert [(r.partition_key, r.tags["landing/file"]) for r in result.run_requests] == [
        ("2026-01-01", "sales_2026-01-01.csv"),
        ("2026-01-02", "sales_2026-01-02.csv"),
    ]
    assert all(r.run_key.startswith(r.tags["landing/file"] + "@") for r in result.run_requests)

    again, _ = tick(sensor, instance, cursor)
    assert again.run_requests == [] and "no new or changed files" in again.skip_reason.skip_message


def test_a_rewritten_file_with_the_same_content_keeps_its_run_key(sensor, landing, instance):
    [path] = write_sample_sales(landing, days=1, rows_per_day=20)
    first, cursor = tick(sensor, instance)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    touched, cursor = tick(sensor, instance, cursor)
    assert touched.run_requests[0].run_key == first.run_requests[0].run_key  # Dagster runs it once

    path.write_text(path.read_text().replace("North", "South"))
    changed, _ = tick(sensor, instance, cursor)
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_bad_names_schemas_and_escaping_links_are_reported_not_run(sensor, landing, instance, tmp_path):
    write_sample_sales(landing, days=1, rows_per_day=20)
    (landing / "notes.txt").write_text("hello")
    (landing / "sales_2026-01-02.csv").write_text("order_id,region\n1,North\n")
    outside = tmp_path / "secret.csv"
    write_sample_sales(tmp_path / "elsewhere", days=1, rows_per_day=20, start="2026-01-03")
    (tmp_path / "elsewhere" / "sales_2026-01-03.csv").rename(outside)
    (landing / "sales_2026-01-03.csv").symlink_to(outside)
    (landing / "sales_2025-12-31.csv").write_text("x")
    (landing / ".sales_2026-01-04.csv.partial").write_text("still being written")

    result, cursor = tick(sensor, instance)
    assert [r.partition_key for r in result.run_requests] == ["2026-01-01"]

    quiet, _ = tick(sensor, instance, cursor)
    reason = quiet.skip_reason.skip_message
    assert "notes.txt: name does not match" in reason
    assert "lacks required columns" in reason and "sales_2026-01-02.csv" in reason
    assert "sales_2026-01-03.csv: points outside the landing directory" in reason
    assert "no partition 2025-12-31" in reason
    assert ".partial" not in reason


def test_a_missing_landing_directory_is_not_an_error(sensor, instance):
    result, _ = tick(sensor, instance)
    assert result.run_requests == [] and "no new or changed files" in result.skip_reason.skip_message
