"""A run whose step process is killed still gets its terminal events, from the run-status sensor."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg

from orchestration import lineage
from orchestration.lineage_hooks import run_failed
from tests.conftest import run_event
from tests.lineage.test_events import read_events

ROOT = Path(__file__).resolve().parents[2]


def test_killed_step_gets_fail_events_from_the_sensor_exactly_once(data_dir, instance):
    env = {**os.environ, "KILL_NODE": "second", "PIPELINE_DATA_DIR": str(data_dir),
           "DAGSTER_HOME": instance.root_directory}
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
         "-m", "tests.lineage.killed_defs", "--select", "*"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.FAILURE
    before = Counter((e["job"]["name"].split(".")[-1], e["eventType"]) for e in read_events(data_dir))
    assert before[("second", "START")] == 1 and before[("second", "FAIL")] == 0  # died mid-node

    failure = run_event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="openlineage_run_failed", dagster_event=failure,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    run_failed(context)
    run_failed(context)  # a repeated tick changes nothing

    events = read_events(data_dir)
    counts = Counter((e["job"]["name"].split(".")[-1], e["eventType"]) for e in events)
    run_job = run.job_name
    assert counts[(run_job, "START")] == 1 and counts[(run_job, "FAIL")] == 1
    # `first` may or may not have been stored before the kill; either way its run is closed.
    first_stored = any(
        r.event_log_entry.dagster_event.asset_key == dg.AssetKey("first")
        for r in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
    )
    assert counts[("first", "START")] == 1
    assert counts[("first", "COMPLETE" if first_stored else "FAIL")] == 1
    assert counts[("second", "START")] == 1 and counts[("second", "FAIL")] == 1
    assert counts[("third", "START")] == 0
    by_run = Counter(e["run"]["runId"] for e in events if e["eventType"] in ("COMPLETE", "FAIL", "ABORT"))
    assert set(by_run.values()) == {1}
    assert lineage.delivery().spool.pending() == []
