"""A run whose step process is killed still gets its terminal events, from the run-status sensor."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from orchestration.lineage import client as lineage_client
from orchestration.lineage.runs import open_asset_runs, run_failed
from tests.conftest import run_event
from tests.lineage.test_events import read_events

pytestmark = pytest.mark.services  # `dagster asset materialize`, whose step process is killed
ROOT = Path(__file__).resolve().parents[2]


def materialize_and_kill(data_dir, instance, kill_after_s: float) -> dg.DagsterRun:
    """`second` kills its step's process after `kill_after_s`; nodes past 0.2 s count as long."""
    env = {
        **os.environ,
        "KILL_NODE": "second",
        "KILL_AFTER_S": str(kill_after_s),
        "PIPELINE_LIVE_AFTER_S": "0.2",
        "PIPELINE_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": instance.root_directory,
    }
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "tests.lineage.killed_defs",
            "--select",
            "*",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode != 0
    [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.FAILURE
    return run


def end_from_sensor(instance, run) -> None:
    failure = run_event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="openlineage_run_failed",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()
    run_failed(context)
    run_failed(context)  # a repeated tick changes nothing


def test_a_long_node_killed_mid_run_gets_fail_from_the_sensor_exactly_once(data_dir, instance):
    run = materialize_and_kill(data_dir, instance, kill_after_s=1.0)
    before = Counter((e["job"]["name"].split(".")[-1], e["eventType"]) for e in read_events(data_dir))
    assert before[("second", "START")] == 1 and before[("second", "FAIL")] == 0  # spooled as it ran

    end_from_sensor(instance, run)

    events = read_events(data_dir)
    counts = Counter((e["job"]["name"].split(".")[-1], e["eventType"]) for e in events)
    run_job = "killed_flow"  # the dataflow names an ad-hoc run's lineage job (Dagster's: __ASSET_JOB)
    assert run.job_name == "__ASSET_JOB"
    assert counts[(run_job, "START")] == 1 and counts[(run_job, "FAIL")] == 1
    assert counts[("first", "START")] == 1 and counts[("first", "COMPLETE")] == 1  # stored before
    assert counts[("second", "START")] == 1 and counts[("second", "FAIL")] == 1
    assert counts[("third", "START")] == 0
    [run_fail] = [e for e in events if e["job"]["name"] == run_job and e["eventType"] == "FAIL"]
    asset_fail = next(e for e in events if e["job"]["name"].endswith(".second") and e["eventType"] == "FAIL")
    assert (
        asset_fail["run"]["facets"]["errorMessage"]["message"] == "the run ended before this asset finished"
    )
    assert (
        run_fail["run"]["facets"]["errorMessage"]["message"]
        != asset_fail["run"]["facets"]["errorMessage"]["message"]
    )
    by_run = Counter(e["run"]["runId"] for e in events if e["eventType"] in ("COMPLETE", "FAIL", "ABORT"))
    assert set(by_run.values()) == {1}
    assert lineage_client.delivery().spool.pending() == []


def test_a_quick_node_killed_leaves_no_asset_run_open(data_dir, instance):
    """A node that dies before the live threshold never had its START spooled (quick nodes spool
    START with their end), so lineage shows no run of it, rather than one left open."""
    run = materialize_and_kill(data_dir, instance, kill_after_s=0.0)
    end_from_sensor(instance, run)

    counts = Counter((e["job"]["name"].split(".")[-1], e["eventType"]) for e in read_events(data_dir))
    assert counts[("killed_flow", "START")] == 1 and counts[("killed_flow", "FAIL")] == 1
    assert counts[("second", "START")] == 0 and counts[("second", "FAIL")] == 0
    assert counts[("third", "START")] == 0
    assert open_asset_runs(run.run_id) == []
