"""Hamilton's thread pool inside one step (`max_parallel_nodes`): independent nodes overlap, and
each asset is still stored and reported as its node finishes."""

import dagster as dg
import pytest

from orchestration import ValueStore, hamilton_assets
from orchestration.monitoring.progress import ProgressSettings
from tests.conftest import step_failure

NAP_S = 0.5
SLEEPERS = """
import os
import time


def _nap(value: int) -> int:
    time.sleep(0.5)
    if os.environ.get("FAIL_NODE") == f"n{value}":
        raise RuntimeError(f"n{value} broke")
    return value


def n1() -> int:
    return _nap(1)


def n2() -> int:
    return _nap(2)


def n3() -> int:
    return _nap(3)


def n4() -> int:
    return _nap(4)


def total(n1: int, n2: int, n3: int, n4: int) -> int:
    return n1 + n2 + n3 + n4
"""


def step_seconds(instance, run_id) -> float:
    times = {
        e.dagster_event.event_type: e.timestamp
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.dagster_event.is_step_event
    }
    return times[dg.DagsterEventType.STEP_SUCCESS] - times[dg.DagsterEventType.STEP_START]


def progress(instance, run_id, start: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if (e.user_message or "").startswith(start)]


@pytest.fixture
def sleepers(make_module, monkeypatch):
    monkeypatch.delenv("FAIL_NODE", raising=False)
    return make_module(SLEEPERS)


def test_independent_nodes_run_at_once_and_still_stream_one_by_one(sleepers, data_dir, instance):
    calls = []
    assets = hamilton_assets(
        sleepers,
        max_parallel_nodes=4,
        progress_callbacks=[lambda *a: calls.append(a)],
        progress_settings=ProgressSettings(live_after_s=NAP_S / 2),
    )
    result = dg.materialize([assets], instance=instance)

    assert result.success
    assert step_seconds(instance, result.run_id) < 0.75 * 4 * NAP_S
    keys = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    assert sorted(keys[:4]) == ["n1", "n2", "n3", "n4"] and keys[4] == "total"  # topological
    durations = {
        e.asset_key.to_user_string(): e.materialization.metadata["duration_s"].value
        for e in result.get_asset_materialization_events()
    }
    assert all(durations[f"n{i}"] >= 0.9 * NAP_S for i in range(1, 5))
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("total")) == 10
    running = [line.split(" [")[0] for line in progress(instance, result.run_id, "running ")]
    assert sorted(running) == ["running n1", "running n2", "running n3", "running n4"]  # all at once
    ends = [message for _, _, message in calls if " done in " in message]
    assert len(ends) == 5 and ends[-1].startswith("[5/5 100%] total done in ")
    assert [round(percent) for _, percent, message in calls if " done in " in message] == [
        20,
        40,
        60,
        80,
        100,
    ]


def test_off_by_default_nodes_run_one_at_a_time(sleepers, data_dir, instance):
    result = dg.materialize([hamilton_assets(sleepers)], instance=instance)
    assert result.success
    assert step_seconds(instance, result.run_id) >= 4 * NAP_S


def test_a_failing_node_fails_the_step_naming_it_and_nothing_downstream_runs(
    sleepers, data_dir, instance, monkeypatch
):
    monkeypatch.setenv("FAIL_NODE", "n3")
    result = dg.materialize(
        [hamilton_assets(sleepers, max_parallel_nodes=4)], instance=instance, raise_on_error=False
    )

    assert not result.success
    assert "Hamilton node 'n3' (asset n3) failed: RuntimeError: n3 broke" in step_failure(result)
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "n3" not in keys and "total" not in keys
    assert not ValueStore(data_dir / "assets").exists(dg.AssetKey("total"))
