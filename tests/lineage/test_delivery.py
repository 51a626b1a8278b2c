"""Delivery of OpenLineage events to a real HTTP backend that works, refuses, hangs or fails.

Every test materializes the shipped ML dataflow for real and points openlineage-python's own HTTP
transport (`OPENLINEAGE_URL`) at a local `LineageReceiver`. A run must never be slowed or broken by
the backend, and no event may be lost: what the backend did not take stays in the spool and is sent,
in spool order, once the backend is back (`LineageDelivery.deliver_pending()` or
`python -m orchestration.lineage.cli flush`).

Timing bounds are generous on purpose: a run takes about 2 s here, while an implementation that sent
events from the run itself would spend about 9 s per event against a refusing backend (urllib3's 5
retries with backoff) and 30 s per event against a hanging one, so 22 events miss the bound by far.
"""

import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import dagster as dg
import pytest

from hamilton_pipelines import ml_pipeline
from orchestration import hamilton_assets
from orchestration.lineage import client as lineage_client
from orchestration.lineage.delivery import BUSY, LineageSpool
from orchestration.lineage.runs import dagster_run
from tests.support.http_receiver import LineageReceiver
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
RUN_BOUND_S = 15.0  # one run of the ML dataflow with a dead backend; ~2 s expected
DELIVERY_TIMEOUT_S = 60.0  # bounded polls for background delivery / recovery
TERMINAL = {"COMPLETE", "FAIL", "ABORT"}
PROCESS_BOUND_S = 45.0  # the same run in a fresh Python process, imports included; ~5 s expected
SECRET = "marker-secret-4711"
RUN_IN_PROCESS = """
import dagster as dg
from hamilton_pipelines import ml_pipeline
from orchestration import hamilton_assets
result = dg.materialize([hamilton_assets(ml_pipeline)], instance=dg.DagsterInstance.ephemeral())
raise SystemExit(0 if result.success else 1)
"""


@pytest.fixture(autouse=True)
def lineage_env(data_dir, monkeypatch):
    """No OpenLineage configuration from outside the test, and none left behind by it.

    openlineage-python copies OPENLINEAGE_URL/OPENLINEAGE_API_KEY into
    `OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__*` environment variables whenever a client is
    created (here: in the delivery thread), behind monkeypatch's back; those are removed afterwards.
    Spooled events left at the end are removed too, so a delivery thread of this test that is still
    retrying has nothing to send into a later test.
    """
    before = {k for k in os.environ if k.startswith("OPENLINEAGE")}
    for name in before:
        monkeypatch.delenv(name)
    yield
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        if name not in before:
            os.environ.pop(name, None)
    spool = LineageSpool(data_dir / "lineage" / "spool")
    spool.delete([event_id for event_id, _ in spool.pending()])


@pytest.fixture
def receiver():
    with LineageReceiver("ok") as backend:
        yield backend


@pytest.fixture
def ml_assets():
    return hamilton_assets(ml_pipeline)


def expected_count(assets) -> int:
    return 2 + 2 * len(assets.keys)  # the Dagster run, and START + COMPLETE of every asset


def timed_run(assets, instance):
    started = time.monotonic()
    result = dg.materialize([assets], instance=instance)
    return result, time.monotonic() - started


def root_run_id(instance, result) -> str:
    return dagster_run(instance, result.run_id).openlineage_run_id


def of_run(events: list[dict], root: str) -> list[dict]:
    """The events of one Dagster run: its own, and those of its asset runs (parent facet)."""

    def belongs(event):
        parent = event["run"].get("facets", {}).get("parent", {})
        return event["run"]["runId"] == root or parent.get("run", {}).get("runId") == root

    return [e for e in events if belongs(e)]


def spooled(data_dir) -> list[dict]:
    spool = LineageSpool(data_dir / "lineage" / "spool")
    return [payload for _, payload in spool.pending()]


def deliver_until_empty(timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
    """Delivers synchronously until the spool is empty (bounded); the background thread may be
    holding the delivery lock in the middle of a retry, in which case this returns (0, pending)."""
    target = lineage_client.delivery()
    deadline = time.monotonic() + timeout_s
    while True:
        _, pending = target.deliver_pending()
        if pending == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{pending} event(s) still spooled after {timeout_s} s: {target.last_error}")
        time.sleep(0.1)


def assert_one_start_and_one_end_per_run_id(events: list[dict]) -> None:
    by_run = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event["eventType"])
    for run_id, types in by_run.items():
        assert types[0] == "START", (run_id, types)
        assert types[-1] in TERMINAL, (run_id, types)
        assert Counter(types) == Counter({"START": 1, types[-1]: 1}), (run_id, types)


def cli_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without OpenLineage configuration, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    return {**env, "HAMILTON_TELEMETRY_ENABLED": "false", **overrides}


def lineage_cli(command: str, env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m orchestration.lineage.cli <command>` in a fresh process with only this configuration."""
    return subprocess.run(
        [sys.executable, "-m", "orchestration.lineage.cli", command],
        cwd=ROOT,
        env=cli_env(env_overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- a working backend ------------------------------------------------------------------------------


def test_working_backend_receives_every_event_once_in_order(
    ml_assets, data_dir, instance, receiver, monkeypatch
):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)

    result, _ = timed_run(ml_assets, instance)

    assert result.success
    count = expected_count(ml_assets)
    received = of_run(receiver.wait_for(count, DELIVERY_TIMEOUT_S), root_run_id(instance, result))
    assert len(received) == count
    deliver_until_empty()
    assert not spooled(data_dir)
    assert len({json.dumps(e, sort_keys=True) for e in received}) == count  # no duplicates
    assert_one_start_and_one_end_per_run_id(received)
    assert received[0]["eventType"] == "START" and "parent" not in received[0]["run"]["facets"]
    assert received[-1]["eventType"] == "COMPLETE" and "parent" not in received[-1]["run"]["facets"]
    assert all(h.get("Content-Type") == "application/json" for h in receiver.headers)
    assert not (data_dir / "lineage" / "events.jsonl").exists()  # the HTTP transport, not the file


# -- a refusing backend -----------------------------------------------------------------------------


def test_refusing_backend_neither_slows_the_run_nor_loses_events(
    ml_assets, data_dir, instance, receiver, monkeypatch
):
    receiver.set_mode("refuse")  # nothing listens on its port
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)

    result, seconds = timed_run(ml_assets, instance)

    assert result.success
    assert seconds < RUN_BOUND_S
    kept = spooled(data_dir)
    assert len(kept) == expected_count(ml_assets)
    assert receiver.events == []

    receiver.set_mode("ok")  # listening on the same port again
    deliver_until_empty()

    assert receiver.wait_for(len(kept), 5) == kept  # all of them, once each, in spool order
    assert spooled(data_dir) == []


@pytest.mark.services  # the run and the lineage CLI in processes of their own
def test_run_process_exits_promptly_and_cli_flush_delivers_what_it_left(ml_assets, data_dir, monkeypatch):
    """A run in its own process (as `dagster asset materialize` or a step subprocess) with a dead
    backend exits without waiting on lineage; `flush` in another process delivers what it spooled."""
    dead = {"PIPELINE_DATA_DIR": str(data_dir), "OPENLINEAGE_URL": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", RUN_IN_PROCESS],
        cwd=ROOT,
        env=cli_env(dead),
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert seconds < PROCESS_BOUND_S
    kept = spooled(data_dir)
    assert len(kept) == expected_count(ml_assets)
    assert lineage_cli("status", dead).stdout.startswith(f"{len(kept)} event(s) waiting in ")

    with LineageReceiver("ok") as working:
        live = {"PIPELINE_DATA_DIR": str(data_dir), "OPENLINEAGE_URL": working.url}
        flushed = lineage_cli("flush", live)
        assert flushed.returncode == 0, flushed.stdout + flushed.stderr
        spool_folder = data_dir / "lineage" / "spool" / "spool.db"
        assert flushed.stdout.strip() == f"delivered {len(kept)} event(s); 0 still waiting in {spool_folder}"
        assert working.wait_for(len(kept), 5) == kept  # all of them, once each, in spool order
    assert spooled(data_dir) == []
    status = lineage_cli("status", live)
    assert status.returncode == 0 and status.stdout.startswith("0 event(s) waiting"), (
        status.stdout + status.stderr
    )


# -- a hanging backend ------------------------------------------------------------------------------


def test_hanging_backend_does_not_stall_the_run(ml_assets, data_dir, instance, receiver, monkeypatch):
    receiver.set_mode("hang")  # takes the request and never answers (the transport's timeout is 5 s)
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)

    result, seconds = timed_run(ml_assets, instance)

    assert result.success
    assert seconds < RUN_BOUND_S
    assert receiver.held >= 1  # the delivery thread is stuck on the first event
    kept = spooled(data_dir)
    assert len(kept) == expected_count(ml_assets)

    receiver.set_mode("ok")  # held connections are dropped unanswered; the transport retries
    deliver_until_empty()

    assert receiver.wait_for(len(kept), 5) == kept
    assert spooled(data_dir) == []


# -- a failing backend ------------------------------------------------------------------------------


def test_backend_answering_500_keeps_events_until_it_recovers(
    ml_assets, data_dir, instance, receiver, monkeypatch
):
    receiver.set_mode("500")
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)

    result, seconds = timed_run(ml_assets, instance)

    assert result.success
    assert seconds < RUN_BOUND_S
    assert receiver.rejected >= 1
    kept = spooled(data_dir)
    assert len(kept) == expected_count(ml_assets)

    receiver.set_mode("ok")
    deliver_until_empty()

    assert receiver.wait_for(len(kept), 5) == kept
    assert spooled(data_dir) == []


# -- lineage turned off -----------------------------------------------------------------------------


def test_disabled_lineage_spools_and_sends_nothing(ml_assets, data_dir, instance, receiver, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")

    result, _ = timed_run(ml_assets, instance)

    assert result.success
    assert receiver.wait_for(1, 1.0) == []
    lineage_folder = data_dir / "lineage"
    assert not lineage_folder.exists() or [p for p in lineage_folder.rglob("*") if p.is_file()] == []


# -- a broken configuration -------------------------------------------------------------------------


def test_wrongly_structured_config_keeps_events_spooled_until_it_is_fixed(
    ml_assets, data_dir, instance, receiver, monkeypatch, tmp_path
):
    broken = tmp_path / "openlineage.yml"
    broken.write_text("transport: [1, 2]\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(broken))

    result, seconds = timed_run(ml_assets, instance)

    assert result.success and seconds < RUN_BOUND_S
    target = lineage_client.delivery()
    deadline = time.monotonic() + 5
    while not target.last_error and time.monotonic() < deadline:  # the thread may hold the lock
        assert target.deliver_pending()[0] == 0
        time.sleep(0.05)
    assert "AttributeError" in target.last_error  # openlineage-python's `config.transport.get(...)`
    kept = spooled(data_dir)
    assert len(kept) == expected_count(ml_assets)
    assert not (data_dir / "lineage" / "events.jsonl").exists()

    fixed = tmp_path / "fixed.yml"
    fixed.write_text(f"transport:\n  type: http\n  url: {receiver.url}\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(fixed))  # a new configuration: a new delivery
    deliver_until_empty()

    assert receiver.wait_for(len(kept), 5) == kept
    assert spooled(data_dir) == []


def test_config_file_with_a_yaml_syntax_error_keeps_events_spooled(
    ml_assets, data_dir, instance, monkeypatch, tmp_path
):
    broken = tmp_path / "openlineage.yml"
    broken.write_text("transport:\n  type: http\n  url: [http://127.0.0.1:1\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(broken))

    result, _ = timed_run(ml_assets, instance)

    assert result.success
    lineage_client.delivery().drain(DELIVERY_TIMEOUT_S)
    assert not (data_dir / "lineage" / "events.jsonl").exists()
    assert len(spooled(data_dir)) == expected_count(ml_assets)


# -- secrets ----------------------------------------------------------------------------------------


def test_api_key_goes_only_into_the_auth_header(
    ml_assets, data_dir, instance, receiver, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.DEBUG)  # openlineage-python and urllib3 debug logs included
    receiver.set_mode("500")  # so the events stay in the spool, where they can be inspected
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", SECRET)

    result, _ = timed_run(ml_assets, instance)
    assert result.success
    spool_files = [p for p in (data_dir / "lineage").rglob("*") if p.is_file()]
    assert len(spooled(data_dir)) == expected_count(ml_assets)
    for path in spool_files:  # events, claims and the lock file
        assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path

    receiver.set_mode("ok")
    deliver_until_empty()

    received = receiver.wait_for(expected_count(ml_assets), 5)
    assert len(received) == expected_count(ml_assets)
    assert {h.get("Authorization") for h in receiver.headers} == {f"Bearer {SECRET}"}
    assert not any(SECRET.encode() in body for body in receiver.bodies)
    for entry in instance.all_logs(result.run_id):
        assert SECRET not in dg.serialize_value(entry)
    assert SECRET not in caplog.text
    captured = capfd.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err


# -- regressions: each of these was a bug once ------------------------------------------------------

EVENT = {"eventType": "START", "eventTime": "2026-01-01T00:00:00+00:00", "run": {"runId": "r"}, "job": {}}


def test_creating_the_transport_does_not_replace_the_delivery(data_dir, receiver, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    first = lineage_client.delivery()
    first.spool.put(EVENT)
    assert first.deliver_pending() == (1, 0)  # the transport is created here
    assert lineage_client.delivery() is first


def test_a_delivery_sends_through_the_configuration_it_was_created_for(data_dir, receiver, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    target = lineage_client.delivery()
    with LineageReceiver("ok") as other:
        monkeypatch.setenv("OPENLINEAGE_URL", other.url)  # the next configuration, e.g. in a benchmark
        target.spool.put(EVENT)
        assert target.deliver_pending() == (1, 0)
        assert other.events == [] and receiver.events == [EVENT]


def test_a_successful_delivery_clears_the_previous_backend_error(data_dir, receiver, monkeypatch, tmp_path):
    config = tmp_path / "openlineage.yml"  # no urllib3 retries, so a failure takes milliseconds
    config.write_text(f"transport:\n  type: http\n  url: {receiver.url}\n  retry:\n    total: 0\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    receiver.set_mode("500")
    target = lineage_client.delivery()
    target.spool.put(EVENT)
    assert target.deliver_pending() == (0, 1) and target.last_error

    receiver.set_mode("ok")
    assert target.deliver_pending() == (1, 0)
    assert target.last_error is None


def test_a_run_ending_while_another_process_delivers_sends_its_last_events_itself(
    data_dir, receiver, monkeypatch
):
    """Processes share the spool and one delivers at a time. A run that ends while another process
    holds the delivery lock, after that one's last read of the spool, must not exit with its last
    events spooled (ten CLI runs at once once left one): its drain waits for the lock, boundedly,
    and this process sends them itself."""
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    target = lineage_client.delivery()
    last = {**EVENT, "eventType": "COMPLETE"}
    target.spool.put(EVENT)
    assert target.deliver_pending() == (1, 0)  # the run's START went out: the backend is up
    with open(target.spool.folder / ".deliver.lock", "a") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)  # another process's delivery round, in progress
        target.emit(last)
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while target.last_error != BUSY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert target.last_error == BUSY
        done = threading.Timer(0.3, fcntl.flock, (other_process, fcntl.LOCK_UN))  # its round ends
        done.start()
        target.drain(timeout_s=5.0, stuck_s=1.0)  # slow sends are not what this is about
        done.join()

    assert receiver.events == [EVENT, last] and len(target.spool) == 0


def test_an_assets_complete_is_spooled_before_dagster_records_its_materialization(
    ml_assets, data_dir, instance, receiver, monkeypatch
):
    """Results already waiting are stored and reported together (one spool commit for their
    events); still, at the moment Dagster records each materialization, its COMPLETE is spooled."""
    receiver.set_mode("refuse")
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    checked: list[tuple[str, bool]] = []
    record = instance.handle_new_event

    def handle_new_event(event, *args, **kwargs):
        dagster_event = event.dagster_event
        if (
            dagster_event is not None
            and dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            job = ".".join(dagster_event.asset_key.path)
            completes = {e["job"]["name"] for e in spooled(data_dir) if e["eventType"] == "COMPLETE"}
            checked.append((job, any(name.endswith(f".{job}") for name in completes)))
        return record(event, *args, **kwargs)

    monkeypatch.setattr(instance, "handle_new_event", handle_new_event)
    result = dg.materialize([ml_assets], instance=instance)

    assert result.success
    assert len(checked) == len(ml_assets.keys)
    assert [job for job, spooled_first in checked if not spooled_first] == []
