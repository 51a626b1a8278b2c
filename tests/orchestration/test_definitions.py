"""The shipped definitions: jobs, schedules and sensors an operator finds in the UI."""

import importlib
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest


@pytest.fixture
def defs(data_dir, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Europe/Berlin")
    import orchestration.definitions as module

    yield importlib.reload(module).defs
    monkeypatch.undo()
    importlib.reload(module)


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
