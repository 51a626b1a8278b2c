"""Progress beyond the run log: rate-limited callbacks, Slack messages to a real HTTP receiver, and
the terminal bar, read back from the stderr Dagster captured (or printed by the real CLI)."""

import os
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import dagster as dg
import pytest

from orchestration import hamilton_assets
from orchestration.monitoring.callbacks import RateLimited
from orchestration.monitoring.progress import StepProgress
from orchestration.monitoring.slack_progress import progress_callbacks_from_env, slack_progress
from orchestration.notifiers import SlackWebhook
from tests.conftest import run_event
from tests.orchestration import counting_flow
from tests.support.http_receiver import ENDPOINT, LineageReceiver

ROOT = Path(__file__).resolve().parents[2]
BAR = re.compile(r"(\S+): +(\d+)%\|[^|]*\| (\d+)/(\d+) \[[^]]*\]")


class Clock:
    """Time that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bars(text: str) -> list[tuple[str, int, int]]:
    """Every frame of every tqdm bar in `text`: (description, n, total)."""
    return [(name, int(n), int(total)) for name, _, n, total in BAR.findall(text)]


def captured_stderr(instance, run_id: str) -> str:
    """The run's stderr as Dagster captured it (what the UI shows and the CLI mirrors)."""
    captured = run_event(instance, run_id, dg.DagsterEventType.LOGS_CAPTURED).event_specific_data
    log_key = [run_id, "compute_logs", captured.file_key]
    return instance.compute_log_manager.get_log_data(log_key).stderr.decode()


# -- rate limiting ------------------------------------------------------------------------------


def run_step(n: int, callback, clock: Clock, seconds_per_asset: float = 0.0) -> None:
    """Feeds `callback` what a step of `n` quick assets sends: each asset's start, then its end."""
    progress = StepProgress([f"asset_{i}" for i in range(n)], clock=clock)
    for i in range(n):
        callback(f"asset_{i}", progress.percent, progress.starting(f"asset_{i}"))
        clock.now += seconds_per_asset
        line = progress.finished(f"asset_{i}", seconds_per_asset)
        callback(f"asset_{i}", progress.percent, line)


def test_a_thousand_assets_send_first_last_and_at_most_one_update_per_interval():
    clock, sent = Clock(), []
    run_step(1000, RateLimited(lambda *a: sent.append((clock.now, *a)), 60, clock=clock), clock, 0.5)

    assert sent[0][1:] == ("asset_0", 0.0, "Executing asset_0 [0/1000 0%]")
    assert sent[-1][2] == 100.0 and sent[-1][3].startswith("[1000/1000 100%] asset_999 done")
    assert len(sent) <= 2 + 500 // 60
    times = [when for when, *_ in sent]
    assert all(later - earlier >= 60 for earlier, later in pairwise(times[:-1]))


def test_min_percent_bounds_messages_however_fast_the_updates_come():
    clock, sent = Clock(), []
    run_step(
        1000, RateLimited(lambda *a: sent.append(a), min_interval_s=0, min_percent=10, clock=clock), clock
    )
    percents = [percent for _, percent, _ in sent]
    assert percents[0] == 0.0 and percents[-1] == 100.0
    assert len(sent) <= 12
    assert all(later - earlier >= 10 for earlier, later in pairwise(percents[:-1]))


def test_each_step_starts_afresh():
    clock, sent = Clock(), []
    limited = RateLimited(lambda *a: sent.append(a[2].split(" done")[0]), min_interval_s=3600, clock=clock)
    for _ in range(2):  # two runs of a 5-asset step within the hour
        run_step(5, limited, clock)
    assert sent == ["Executing asset_0 [0/5 0%]", "[5/5 100%] asset_4"] * 2


def test_a_failing_callback_never_fails_the_run(data_dir, instance):
    calls = []

    def broken(step, percent, message):
        calls.append(step)
        raise ConnectionError("notifier is down")

    assets = hamilton_assets(counting_flow, progress_callbacks=[RateLimited(broken, 3600)])
    result = dg.materialize([assets], instance=instance)
    assert result.success
    assert calls == ["source", "summary"]  # the first update (source starts) and the final one
    warnings = [
        e.user_message for e in instance.all_logs(result.run_id) if "not delivered" in (e.user_message or "")
    ]
    assert len(warnings) == 1 and "broken" in warnings[0]


# -- Slack ----------------------------------------------------------------------------------------


@pytest.fixture
def slack():
    """A real HTTP server taking Slack's JSON posts (any JSON POST receiver will do)."""
    with LineageReceiver("ok") as receiver:
        yield receiver


def test_slack_gets_the_first_and_final_update_of_a_quick_run(slack, data_dir, instance):
    webhook = SlackWebhook(url=slack.url + ENDPOINT)
    assets = hamilton_assets(counting_flow, progress_callbacks=[slack_progress(webhook, "counting")])
    assert dg.materialize([assets], instance=instance).success
    texts = [message["text"] for message in slack.wait_for(2, timeout_s=5)]
    assert len(texts) == 2
    assert texts[0] == "*counting: 0%*\nExecuting source [0/5 0%]"
    assert texts[1].startswith("*counting: 100%*\n[5/5 100%] summary done in ")


def test_slack_progress_is_configured_by_environment(slack, data_dir, instance, monkeypatch):
    monkeypatch.delenv("PROGRESS_SLACK_WEBHOOK_URL", raising=False)
    assert progress_callbacks_from_env("counting") == []

    monkeypatch.setenv("PROGRESS_SLACK_WEBHOOK_URL", slack.url + ENDPOINT)
    monkeypatch.setenv("PROGRESS_SLACK_INTERVAL_S", "0")  # then only the 10% step limits
    assets = hamilton_assets(counting_flow, progress_callbacks=progress_callbacks_from_env("counting"))
    assert dg.materialize([assets], instance=instance).success
    texts = [message["text"] for message in slack.wait_for(6, timeout_s=5)]
    assert [text.split("*")[1] for text in texts] == [f"counting: {p}%" for p in (0, 20, 40, 60, 80, 100)]


def test_an_unreachable_slack_does_not_fail_the_run(data_dir, instance):
    with LineageReceiver("refuse") as down:
        webhook = SlackWebhook(url=down.url + ENDPOINT)
        assets = hamilton_assets(counting_flow, progress_callbacks=[slack_progress(webhook, "counting")])
        result = dg.materialize([assets], instance=instance)
    assert result.success
    assert len(result.get_asset_materialization_events()) == 5


# -- the terminal bar -----------------------------------------------------------------------------


def test_the_bar_counts_only_the_assets_a_step_computes(data_dir, instance, monkeypatch):
    monkeypatch.setenv("PIPELINE_PROGRESS_BAR", "1")
    assets = hamilton_assets(counting_flow)
    full = dg.materialize([assets], instance=instance)
    subset = dg.materialize([assets], instance=instance, selection=["doubled", "summary"])

    assert bars(captured_stderr(instance, full.run_id))[-1] == ("counting_flow", 5, 5)
    frames = bars(captured_stderr(instance, subset.run_id))  # table and total are loaded
    assert {total for _, _, total in frames} == {2}
    assert frames[-1] == ("counting_flow", 2, 2)


def test_a_range_run_counts_each_partition(make_module, data_dir, instance, monkeypatch):
    monkeypatch.setenv("PIPELINE_PROGRESS_BAR", "1")
    flow = make_module("def day_name(day: str) -> str:\n    return day\n", name="days_flow")
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assets = hamilton_assets(
        flow, partitions_def=daily, partition_input="day", backfill_policy=dg.BackfillPolicy.single_run()
    )
    tags = {
        "dagster/asset_partition_range_start": "2026-01-02",
        "dagster/asset_partition_range_end": "2026-01-04",
    }
    result = dg.materialize([assets], instance=instance, tags=tags)
    assert bars(captured_stderr(instance, result.run_id))[-1] == ("days_flow", 3, 3)


@pytest.mark.parametrize(
    "environment",
    [{"PIPELINE_PROGRESS_BAR": "0"}, {"DAGSTER_IS_DEV_CLI": "1"}],
    ids=["turned-off", "under-dagster-dev"],
)
def test_no_bar_when_off_or_under_dagster_dev(environment, data_dir, instance, monkeypatch):
    monkeypatch.delenv("PIPELINE_PROGRESS_BAR", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = dg.materialize([hamilton_assets(counting_flow)], instance=instance)
    assert result.success
    assert bars(captured_stderr(instance, result.run_id)) == []


@pytest.mark.services  # `dagster asset materialize`
def test_dagster_asset_materialize_shows_the_bar(tmp_path):
    """The CLI runs the step in a subprocess whose stderr Dagster captures and mirrors back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    env.update(
        PIPELINE_PROGRESS_BAR="1",
        PIPELINE_DATA_DIR=str(tmp_path / "data"),
        DAGSTER_HOME=str(tmp_path),
        HAMILTON_TELEMETRY_ENABLED="false",
    )
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "orchestration.definitions",
            "--select",
            "group:ml_pipeline",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    frames = bars(run.stderr)
    assert frames[-1] == ("ml_pipeline", 10, 10)  # assets, not Hamilton's 21 nodes
    assert {total for _, _, total in frames} == {10}


def test_the_bar_names_the_node_running_now(make_module, data_dir, instance, monkeypatch):
    monkeypatch.setenv("PIPELINE_PROGRESS_BAR", "1")
    flow = make_module(
        "import time\n\n\ndef quick() -> int:\n    return 1\n\n\n"
        "def slow(quick: int) -> int:\n    time.sleep(1.5)\n    return quick\n",
        name="bar_flow",
    )
    result = dg.materialize([hamilton_assets(flow)], instance=instance)
    stderr = captured_stderr(instance, result.run_id)
    assert re.search(r"bar_flow: +50%\|[^|]*\| 1/2 \[[^]]*, running slow\]", stderr), (
        stderr
    )  # redrawn while it runs
    assert bars(stderr)[-1] == ("bar_flow", 2, 2)
