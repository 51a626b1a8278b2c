"""Long runs you can watch: running nodes named while they run, heartbeats, callbacks off the
compute thread, ETA from the last run's durations, retries announced, and the event budget."""

import threading
import time

import dagster as dg
import pytest

from orchestration import hamilton_assets
from orchestration.monitoring.callbacks import CallbackThread
from orchestration.monitoring.live_nodes import NodeWatch
from orchestration.monitoring.progress import ProgressSettings, StepProgress


class Clock:
    """Time that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


SLOW_FLOW = """
import time


def quick() -> int:
    return 1


def slow(quick: int) -> int:
    time.sleep(SLEEP_S)
    return quick + 1


def last(slow: int) -> int:
    return slow + 1
"""
SLEEP_S = 0.8
WATCHING = ProgressSettings(live_after_s=0.2, heartbeat_s=0.2)


@pytest.fixture
def slow_flow(make_module):
    return make_module(SLOW_FLOW.replace("SLEEP_S", str(SLEEP_S)), name="slow_flow")


def messages(instance, run_id) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def progress_metadata(instance, run_id) -> dict[str, str]:
    return {
        e.dagster_event.asset_key.to_user_string(): e.asset_materialization.metadata["progress"].value
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


# -- the pieces, on an injected clock -------------------------------------------------------------


def test_a_node_is_shown_after_the_threshold_then_on_each_heartbeat():
    clock = Clock()
    watch = NodeWatch(ProgressSettings(live_after_s=1.0, heartbeat_s=30.0), clock)
    assert watch.next_wait_s() is None  # nothing runs: wait for the next result
    watch.started("model", "model", at=0.0)
    assert watch.next_wait_s() == 1.0
    clock.now = 0.9
    assert watch.due() == [] and watch.running() == []
    clock.now = 1.0
    [(node, running_s)] = watch.due()
    assert (node.unit, running_s, node.shown) == ("model", 1.0, 1)
    assert watch.due() == []  # shown once per due time
    assert watch.next_wait_s() == 30.0
    clock.now = 31.5
    assert [(n.unit, s) for n, s in watch.due()] == [("model", 31.5)]
    assert watch.ended("model").shown == 2
    assert watch.next_wait_s() is None


def test_a_quick_node_is_never_shown():
    clock = Clock()
    watch = NodeWatch(ProgressSettings(live_after_s=1.0), clock)
    watch.started("frame", "frame", at=0.0)
    clock.now = 0.5
    assert watch.due() == []
    assert watch.ended("frame").shown == 0


def test_every_running_node_is_shown_with_parallel_nodes():
    clock = Clock()
    watch = NodeWatch(ProgressSettings(live_after_s=1.0), clock)
    for i, start in enumerate([0.0, 0.25, 0.5]):
        watch.started(f"n{i}", f"n{i}", at=start)
    clock.now = 1.25
    assert [n.unit for n, _ in watch.due()] == ["n0", "n1"]
    assert watch.next_wait_s() == 0.25
    clock.now = 1.5
    assert [n.unit for n, _ in watch.due()] == ["n2"]
    assert [n.unit for n in watch.running()] == ["n0", "n1", "n2"]


def test_percent_and_eta_are_weighted_by_last_durations():
    clock = Clock()
    progress = StepProgress(["prep", "train", "report"], {"prep": 1.0, "train": 8.0, "report": 1.0}, clock)
    assert progress.basis == "each asset's last duration"
    assert progress.eta_s() == 10.0  # from history before anything finished
    clock.now = 1.0
    assert progress.finished("prep", 1.0) == "[1/3 10%] prep done in 1.00 s (rows=-) — ETA 9.0 s"
    assert (
        progress.running("train", 31.0)
        == "running train [1/3 10%] — 31.0 s so far (usually 8.0 s) — ETA 9.0 s"
    )
    clock.now = 9.0
    progress.finished("train", 8.0)
    assert progress.percent == 90.0
    clock.now = 10.0
    assert (
        progress.finished("report", 1.0) == "[3/3 100%] report done in 1.00 s (rows=-)"
    )  # no ETA at the end


def test_assets_never_run_weigh_the_mean_and_no_history_counts_assets():
    partial = StepProgress(["a", "b", "new"], {"a": 1.0, "b": 3.0}, Clock())
    assert partial.basis.startswith("each asset's last duration (2 of 3 known")
    partial.finished("new", 0.0)
    assert partial.percent == pytest.approx(100 * 2.0 / 6.0)  # the mean, 2 s, of 6 s in all
    counted = StepProgress(["a", "b", "c", "d"], {}, Clock())
    assert counted.basis.startswith("asset counts")
    assert counted.eta_s() is None  # nothing to go by yet
    counted.finished("a", 0.0)
    assert counted.percent == 25.0


def test_settings_are_checked_and_read_from_the_environment(monkeypatch):
    with pytest.raises(ValueError, match="heartbeat_s"):
        ProgressSettings(heartbeat_s=0)
    monkeypatch.setenv("PIPELINE_LIVE_AFTER_S", "2.5")
    monkeypatch.setenv("PIPELINE_HEARTBEAT_S", "10")
    assert ProgressSettings.from_env() == ProgressSettings(live_after_s=2.5, heartbeat_s=10.0)
    monkeypatch.setenv("PIPELINE_HEARTBEAT_S", "often")
    with pytest.raises(ValueError, match="PIPELINE_HEARTBEAT_S='often'"):
        ProgressSettings.from_env()


def test_a_slow_callback_never_delays_the_sender_and_gets_every_update_in_order():
    received, release = [], threading.Event()

    def slow(step, progress, message):
        release.wait(5)
        received.append(step)

    thread = CallbackThread([slow])
    started = time.perf_counter()
    for i in range(100):
        thread.send(f"n{i}", i, "message")
    assert time.perf_counter() - started < 0.1
    release.set()
    thread.close(wait_s=5)
    assert received == [f"n{i}" for i in range(100)]
    assert thread.warnings() == []


def test_a_hung_callback_is_abandoned_at_step_end_with_one_warning():
    hang = threading.Event()
    thread = CallbackThread([lambda *a: hang.wait(10)])
    thread.send("n", 0.0, "message")
    started = time.perf_counter()
    thread.close(wait_s=0.2)
    assert time.perf_counter() - started < 1.0
    [warning] = thread.warnings()
    assert "still busy 0.2 s after the step ended" in warning
    hang.set()


def test_a_failing_callback_warns_once_per_step():
    def broken(step, progress, message):
        raise ConnectionError("secret-token in the URL")

    thread = CallbackThread([broken])
    for i in range(3):
        thread.send(f"n{i}", 0.0, "message")
    thread.close(wait_s=5)
    [warning] = thread.warnings()
    assert "not delivered (ConnectionError)" in warning and "secret-token" not in warning


# -- in a real step -------------------------------------------------------------------------------


def test_a_long_node_is_named_while_it_runs_with_heartbeats(slow_flow, data_dir, instance):
    calls = []
    assets = hamilton_assets(
        slow_flow, progress_callbacks=[lambda *a: calls.append(a)], progress_settings=WATCHING
    )
    result = dg.materialize([assets], instance=instance)
    assert result.success

    logs = instance.all_logs(result.run_id)
    lines = [e.user_message for e in logs if (e.user_message or "").startswith("running ")]
    assert lines[0].startswith("running slow [1/3 33%] — 0.")  # named once past the threshold
    assert len(lines) >= 3 and all(line.startswith("running slow [1/3 33%]") for line in lines)  # heartbeats
    first_line = next(i for i, e in enumerate(logs) if (e.user_message or "").startswith("running slow"))
    slow_stored = next(
        i
        for i, e in enumerate(logs)
        if e.dagster_event
        and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        and e.dagster_event.asset_key == dg.AssetKey("slow")
    )
    assert first_line < slow_stored  # shown before the node ended
    assert any(m.startswith("[2/3 67%] slow done in 0.8") for m in messages(instance, result.run_id))

    for_slow = [message.split(" —")[0] for step, _, message in calls if step == "slow"]
    assert for_slow[0] == "Executing slow [1/3 33%]"
    assert set(for_slow[1:-1]) == {"running slow [1/3 33%]"} and len(for_slow) >= 4
    assert for_slow[-1].startswith("[2/3 67%] slow done in 0.8")
    for quick, done in (("quick", "[1/3 33%] quick done in"), ("last", "[3/3 100%] last done in")):
        told = [m for s, _, m in calls if s == quick]
        assert len(told) == 2 and told[0].startswith(f"Executing {quick} [") and told[1].startswith(done)


def test_the_second_run_weighs_progress_by_the_first_runs_durations(slow_flow, data_dir, instance):
    assets = hamilton_assets(slow_flow, progress_settings=WATCHING)
    first = dg.materialize([assets], instance=instance)
    second = dg.materialize([assets], instance=instance)

    assert any("weighted by asset counts" in m for m in messages(instance, first.run_id))
    assert progress_metadata(instance, first.run_id)["slow"].startswith("[2/3 67%]")
    assert any("weighted by each asset's last duration" in m for m in messages(instance, second.run_id))
    after_slow = progress_metadata(instance, second.run_id)["slow"]
    percent = int(after_slow.split()[1].rstrip("%]"))
    assert percent >= 95, after_slow  # slow is nearly all of the work, as the first run measured
    running = [m for m in messages(instance, second.run_id) if m.startswith("running slow")]
    assert "(usually 0.8" in running[0]


def test_a_retried_step_says_which_attempt_and_why(make_module, data_dir, instance, tmp_path):
    marker = tmp_path / "failed-once"
    flow = make_module(
        "from pathlib import Path\n\n\n"
        "def flaky() -> int:\n"
        f"    marker = Path({str(marker)!r})\n"
        "    if not marker.exists():\n"
        "        marker.touch()\n"
        "        raise ConnectionError('database went away')\n"
        "    return 1\n",
        name="flaky_flow",
    )
    calls = []
    assets = hamilton_assets(
        flow,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=0.2),
        progress_callbacks=[lambda *a: calls.append(a)],
    )
    result = dg.materialize([assets], instance=instance)
    assert result.success

    said = messages(instance, result.run_id)
    announced = [m for m in said if "Dagster retries this step" in m]
    assert announced == [
        "Hamilton node 'flaky' (asset flaky) failed: ConnectionError: database went away. "
        "Dagster retries this step: attempt 2 of 3 in 0.2 s."
    ]
    [attempt] = [m for m in said if m.startswith("Attempt 2 of 3")]
    assert attempt == (
        "Attempt 2 of 3, after Hamilton node 'flaky' (asset flaky) failed: ConnectionError: database went away "
        "(waited 0.2 s)"
    )
    told = [message for _, _, message in calls]
    assert announced[0] in told and attempt in told


def test_quick_nodes_add_at_most_a_tenth_of_an_event_per_asset(make_module, data_dir, instance):
    """The event budget: per asset, no more events than Dagster's own floor (an output and a
    materialization) plus 0.1 on average, against a bare multi-asset of the same assets."""
    n = 40
    source = "\n\n".join(
        f"def n{i}({f'n{i - 1}: int' if i else ''}) -> int:\n    return {i}\n" for i in range(n)
    )
    ours = hamilton_assets(make_module(source, name="chain_flow"))

    @dg.multi_asset(specs=[dg.AssetSpec(f"n{i}", deps=[f"n{i - 1}"] if i else []) for i in range(n)])
    def bare():
        for i in range(n):
            yield dg.MaterializeResult(asset_key=f"n{i}")

    counts = []
    for assets in (ours, bare):
        result = dg.materialize([assets], instance=instance)
        assert result.success
        counts.append(len(instance.all_logs(result.run_id)))
    assert counts[0] - counts[1] <= 0.1 * n, counts
