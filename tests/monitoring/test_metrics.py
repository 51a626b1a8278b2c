"""Runs push their metrics to a real Pushgateway, Prometheus scrapes them, and a Pushgateway that is
down or hung never fails or stalls a run."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
import uuid

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestration import hamilton_assets
from orchestration.monitoring import metrics
from orchestration.monitoring.progress import ProgressSettings
from tests.orchestration import counting_flow
from tests.support.ports import free_port
from tests.support.prometheus import api, query, wait_for

ASSETS = ["doubled", "source", "summary", "table", "total"]


@pytest.fixture
def pipeline(monkeypatch) -> str:
    """A pipeline name of its own, as the Pushgateway and Prometheus outlive each test."""
    monkeypatch.delenv("FAIL_NODE", raising=False)
    monkeypatch.delenv(metrics.PUSHGATEWAY_URL, raising=False)
    return f"counting_{uuid.uuid4().hex[:8]}"


def series(prometheus, metric: str, pipeline: str, **labels: str) -> dict[str, float]:
    """Values of a metric for one pipeline, by asset."""
    matchers = ",".join(f'{k}="{v}"' for k, v in {"pipeline": pipeline, **labels}.items())
    return query(prometheus, f"{metric}{{{matchers}}}", by="asset")


def firing(prometheus, pipeline: str) -> set[str]:
    alerts = api(prometheus, "alerts")["data"]["alerts"]
    return {
        alert["labels"]["asset"]
        for alert in alerts
        if alert["labels"].get("pipeline") == pipeline and alert["state"] == "firing"
    }


@pytest.mark.services  # Prometheus and the Pushgateway
def test_runs_push_all_four_metrics_and_counters_accumulate(
    prometheus, pushgateway, pipeline, data_dir, instance, monkeypatch
):
    monkeypatch.setenv(metrics.PUSHGATEWAY_URL, pushgateway.url)
    counting = hamilton_assets(counting_flow, name=pipeline)

    first = dg.materialize([counting], instance=instance)
    assert first.success
    wait_for(
        lambda: series(prometheus, metrics.PIPELINE_PROGRESS, pipeline, run_id=first.run_id), {"": 100.0}
    )
    rows = {"source": 4.0, "table": 4.0, "total": 4.0, "doubled": 4.0}  # summary is a dict: no rows
    wait_for(lambda: series(prometheus, metrics.RECORDS_PROCESSED, pipeline), rows)
    once = dict.fromkeys(ASSETS, 1.0)
    wait_for(lambda: series(prometheus, f"{metrics.STEP_DURATION}_count", pipeline), once)
    wait_for(lambda: series(prometheus, metrics.STEP_ERRORS, pipeline), dict.fromkeys(ASSETS, 0.0))
    labels = api(prometheus, "query", query=f'{metrics.STEP_ERRORS}{{pipeline="{pipeline}",asset="total"}}')
    assert labels["data"]["result"][0]["metric"]["job"] == f"hamilton_{pipeline}"  # honor_labels kept it

    monkeypatch.setenv("FAIL_NODE", "total")
    second = dg.materialize([counting], instance=instance, raise_on_error=False)
    assert not second.success
    errors = {**dict.fromkeys(ASSETS, 0.0), "total": 1.0}
    wait_for(lambda: series(prometheus, metrics.STEP_ERRORS, pipeline), errors)
    wait_for(
        lambda: series(prometheus, metrics.PIPELINE_PROGRESS, pipeline, run_id=second.run_id), {"": 40.0}
    )
    assert series(prometheus, metrics.PIPELINE_PROGRESS, pipeline) == {"": 40.0}  # only the latest run's
    counts = {**once, "source": 2.0, "table": 2.0}  # total failed: no duration; nothing after it ran
    wait_for(lambda: series(prometheus, f"{metrics.STEP_DURATION}_count", pipeline), counts)
    assert series(prometheus, metrics.RECORDS_PROCESSED, pipeline) == rows
    wait_for(lambda: firing(prometheus, pipeline), {"total"})  # the shipped alert rule fires


def run_timed(counting, instance) -> tuple[dg.ExecuteInProcessResult, float]:
    started = time.monotonic()
    result = dg.materialize([counting], instance=instance)
    return result, time.monotonic() - started


def warnings_naming(instance, run_id: str, text: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.level == logging.WARNING and text in (entry.user_message or "")
    ]


def test_a_pushgateway_that_is_down_or_hung_neither_fails_nor_stalls_a_run(
    pipeline, silent_server, data_dir, instance, monkeypatch
):
    counting = hamilton_assets(counting_flow, name=pipeline)
    run_timed(counting, instance)  # warm up
    _, without = run_timed(counting, instance)

    port = free_port()
    down = f"http://127.0.0.1:{port}"
    for url, shown in [(f"http://metrics:s3cret@127.0.0.1:{port}/", down), (silent_server, silent_server)]:
        monkeypatch.setenv(metrics.PUSHGATEWAY_URL, url)
        result, took = run_timed(counting, instance)
        assert result.success
        assert took - without < 5.0, f"{took:.1f} s with {shown} against {without:.1f} s without"
        (warning,) = warnings_naming(instance, result.run_id, "Pushgateway")
        assert (
            f"Pushgateway at {shown} (PROMETHEUS_PUSHGATEWAY_URL or the runtime's pushgateway_url):"
            in warning
            and "s3cret" not in warning
            and "metrics:" not in warning
        )


@pytest.mark.services  # the Pushgateway
def test_progress_is_pushed_while_the_step_runs(
    pushgateway, pipeline, make_module, data_dir, instance, monkeypatch
):
    flow = make_module(
        """
        import time

        def quick() -> int:
            return 1

        def slow(quick: int) -> int:
            time.sleep(2.5)
            return quick + 1
        """
    )
    monkeypatch.setenv(metrics.PUSHGATEWAY_URL, pushgateway.url)
    seen: list[float] = []
    running: list[set[tuple[str, float]]] = []  # each poll: the nodes shown as running, since when
    done = threading.Event()

    def poll() -> None:
        with urllib.request.urlopen(f"{pushgateway.url}/metrics", timeout=2) as response:
            text = response.read().decode()
        now_running = set()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("pipeline") != pipeline:
                    continue
                if sample.name == metrics.PIPELINE_PROGRESS:
                    seen.append(sample.value)
                elif sample.name == metrics.NODE_RUNNING:
                    now_running.add((sample.labels["asset"], sample.value))
        running.append(now_running)

    def watch() -> None:
        while not done.is_set():
            poll()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.time()
    try:
        assets = hamilton_assets(flow, name=pipeline, progress_settings=ProgressSettings(live_after_s=0.5))
        assert dg.materialize([assets], instance=instance).success
    finally:
        done.set()
        watcher.join()
    poll()  # the last push may land after the watcher's last look
    assert 50.0 in seen and seen[-1] == 100.0
    shown = set().union(*running)
    assert {asset for asset, _ in shown} == {"slow"}  # only the node past the threshold
    [(_, since)] = shown
    assert started <= since <= started + 2.0  # when it started, not when it was noticed
    assert running[-1] == set()  # cleared once it ended
