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
from orchestration.alerts import SlackWebhook
from orchestration.progress import AssetProgress, RateLimited
from orchestration.slack_progress import progress_callbacks_from_env, slack_progress
from tests.conftest import run_event
from tests.lineage.http_receiver import ENDPOINT, LineageReceiver
from tests.orchestration import counting_flow

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


def test_a_thousand_updates_send_first_last_and_at_most_one_per_interval():
    clock, sent = Clock(), []
    progress = AssetProgress(1000, [RateLimited(lambda *a: sent.append(a), 60, clock=clock)], clock=clock)
    for i in range(1000):
        clock.now = (i + 1) * 0.5  # one asset every half second: a 500 s run
        progress.advance(f"asset_{i}", 0.5)

    steps = [step for step, _, _ in sent]
    assert steps[0] == 1 and steps[-1] == 1000
    assert sent[-1][1] == 100.0 and sent[-1][2].startswith("[1000/1000 100%] asset_999 done")
    assert len(sent) <= 2 + 500 // 60
    times = [step * 0.5 for step in steps]
    assert all(later - earlier >= 60 for earlier, later in pairwise(times[:-1]))


def test_min_percent_bounds_messages_however_fast_the_updates_come():
    clock, sent = Clock(), []
    limited = RateLimited(lambda *a: sent.append(a), min_interval_s=0, min_percent=10, clock=clock)
    progress = AssetProgress(1000, [limited], clock=clock)
    for i in range(1000):
        progress.advance(f"asset_{i}", 0.0)
    percents = [percent for _, percent, _ in sent]
    assert percents[0] == 0.1 and percents[-1] == 100.0
    assert len(sent) <= 12
    assert all(later - earlier >= 10 for earlier, later in pairwise(percents[:-1]))


def test_each_step_starts_afresh():
    clock, sent = Clock(), []
    limited = RateLimited(lambda *a: sent.append(a[0]), min_interval_s=3600, clock=clock)
    for _ in range(2):  # two runs of a 5-asset step within the hour
        progress = AssetProgress(5, [limited], clock=clock)
        for i in range(5):
            progress.advance(f"asset_{i}", 0.0)
    assert sent == [1, 5, 1, 5]


def test_a_failing_callback_never_fails_the_run(data_dir, instance):
    calls = []

    def broken(step, percent, message):
        calls.append(step)
        raise ConnectionError("notifier is down")

    assets = hamilton_assets(counting_flow, progress_callbacks=[RateLimited(broken, 3600)])
    assert dg.materialize([assets], instance=instance).success
    assert calls == [1, 5]


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
    assert texts[0].startswith("*counting: 20%*\n[1/5 20%] source done in ")
    assert texts[1].startswith("*counting: 100%*\n[5/5 100%] summary done in ")


def test_slack_progress_is_configured_by_environment(slack, data_dir, instance, monkeypatch):
    monkeypatch.delenv("PROGRESS_SLACK_WEBHOOK_URL", raising=False)
    assert progress_callbacks_from_env("counting") == []

    monkeypatch.setenv("PROGRESS_SLACK_WEBHOOK_URL", slack.url + ENDPOINT)
    monkeypatch.setenv("PROGRESS_SLACK_INTERVAL_S", "0")  # then only the 10% step limits
    assets = hamilton_assets(counting_flow, progress_callbacks=progress_callbacks_from_env("counting"))
    assert dg.materialize([assets], instance=instance).success
    texts = [message["text"] for message in slack.wait_for(5, timeout_s=5)]
    assert [text.split("*")[1] for text in texts] == [f"counting: {p}%" for p in (20, 40, 60, 80, 100)]


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
    tags = {"dagster/asset_partition_range_start": "2026-01-02", "dagster/asset_partition_range_end": "2026-01-04"}
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
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
         "-m", "orchestration.definitions", "--select", "group:ml_pipeline"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr
    frames = bars(run.stderr)
    assert frames[-1] == ("ml_pipeline", 10, 10)  # assets, not Hamilton's 21 nodes
    assert {total for _, _, total in frames} == {10}
