"""The shipped definitions: jobs, schedules and sensors an operator finds in the UI."""

import importlib
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

import orchestration.definitions
from hamilton_pipelines.sample_data import write_sample_sales


@pytest.fixture
def defs(data_dir, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Europe/Berlin")
    yield importlib.reload(orchestration.definitions).defs
    monkeypatch.undo()
    importlib.reload(orchestration.definitions)


def test_daily_sales_schedule_runs_yesterday_in_the_configured_timezone(defs):
    schedule = defs.resolve_schedule_def("sales_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "Europe/Berlin")
    tick = datetime(2026, 1, 8, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.partition_key == "2026-01-07"


def test_the_model_retrains_weekly_and_the_sensors_are_on(defs):
    ml = defs.resolve_schedule_def("ml_training_schedule")
    assert (ml.cron_schedule, ml.execution_timezone) == ("0 7 * * 1", "Europe/Berlin")
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors["landing_files"] == dg.DefaultSensorStatus.RUNNING
    assert sensors["run_failure_alerts"] == dg.DefaultSensorStatus.RUNNING
    assert sensors["openlineage_run_failed"] == dg.DefaultSensorStatus.RUNNING


@pytest.mark.services  # `dagster asset materialize`
def test_the_cli_backfills_a_date_range_in_one_run(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dagster._core.instance.ref import InstanceRef

    from orchestration import ValueStore

    root = Path(__file__).resolve().parents[2]
    home = tmp_path / "dagster_home"
    home.mkdir()
    data = tmp_path / "data"
    write_sample_sales(data / "landing", days=4, start="2026-01-01")
    env = {**os.environ, "PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "orchestration.definitions",
            "--select",
            "group:sales_analytics",
            "--partition-range",
            "2026-01-02...2026-01-04",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        days = instance.get_materialized_partitions(dg.AssetKey("sales_report"))
        assert days == {"2026-01-02", "2026-01-03", "2026-01-04"}
    store = ValueStore(data / "assets")
    assert all("2026-01-0" in store.read(dg.AssetKey("sales_report"), day) for day in sorted(days))


def test_the_model_retrains_when_the_sales_metrics_are_updated(defs, data_dir, instance):
    sensor = defs.resolve_sensor_def("retrain_on_sales_metrics")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED  # on by choice, like the schedule
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    assert not sensor.evaluate_tick(context).run_requests  # no sales metrics yet

    write_sample_sales(data_dir / "landing", days=3, start="2026-01-01")  # scripts/dev's job, not the defs'
    sales = defs.resolve_assets_def(dg.AssetKey("business_metrics"))
    assert dg.materialize([sales], instance=instance, partition_key="2026-01-03").success
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor)
    [request] = sensor.evaluate_tick(context).run_requests
    assert request.run_key and sensor.job_name == "ml_training"

    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor)
    assert not sensor.evaluate_tick(context).run_requests  # nothing new, no second run


def test_the_shipped_retry_policy_is_three_attempts_waiting_one_then_two_seconds(defs):
    for key in ("sales_report", "trained_model"):
        policy = defs.resolve_assets_def(dg.AssetKey(key)).op.retry_policy
        assert policy.max_retries + 1 == 3  # attempts in all, as the design's run_with_retry(max_retries=3)
        assert [policy.calculate_delay(attempt) for attempt in (1, 2)] == [1, 2]


@pytest.mark.parametrize("names", ["ml_training", "sales_daily, ml_training"])
def test_success_notices_for_any_job_named(names, data_dir, monkeypatch):
    from orchestration.defs.jobs import ml_training, sales_daily
    from orchestration.ops.alerts import notice_jobs_from_env

    monkeypatch.setenv("SUCCESS_NOTICE_JOBS", names)
    named = [job.name for job in notice_jobs_from_env([sales_daily, ml_training])]
    assert named == [name.strip() for name in names.split(",")]
    defs = importlib.reload(orchestration.definitions).defs
    assert defs.resolve_sensor_def("run_success_notices").default_status == dg.DefaultSensorStatus.RUNNING


def test_a_notice_job_that_does_not_exist_fails_the_load_naming_it(data_dir, monkeypatch):
    monkeypatch.setenv("SUCCESS_NOTICE_JOBS", "sales_daily,ml_trainign")
    with pytest.raises(Exception) as raised:
        importlib.reload(orchestration.definitions)
    message = "\n".join(str(e) for e in (raised.value, raised.value.__cause__) if e)
    assert "SUCCESS_NOTICE_JOBS names 'ml_trainign'" in message and "ml_training, sales_daily" in message
    monkeypatch.delenv("SUCCESS_NOTICE_JOBS")
    importlib.reload(orchestration.definitions)
