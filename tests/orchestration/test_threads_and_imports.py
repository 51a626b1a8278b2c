"""What importing does (nothing global) and how the library's threads end: Hamilton's thread is
waited for briefly and named when left running; the lineage delivery thread can be stopped."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import hamilton_assets
from orchestration.lineage.delivery import LineageDelivery, LineageSpool

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.services  # a fresh interpreter: this process has imported everything already
def test_importing_the_library_starts_no_thread_and_changes_no_global_setting(tmp_path):
    probe = textwrap.dedent("""
        import json, logging, threading
        from openlineage.client.generated import base

        before = (base.PRODUCER, list(logging.getLogger("hamilton.driver").filters), threading.active_count())
        import orchestration, orchestration.lineage.observer, orchestration.lineage.runs
        import orchestration.monitoring.metrics, orchestration.ops.alerts, orchestration.run_dataflow
        after = (base.PRODUCER, list(logging.getLogger("hamilton.driver").filters), threading.active_count())
        print(json.dumps({"unchanged": before == after, "before": repr(before), "after": repr(after)}))
    """)
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PIPELINE_DATA_DIR": str(data), "HAMILTON_TELEMETRY_ENABLED": "false"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["unchanged"], result
    assert not data.exists()  # nothing written either


def test_a_step_that_stops_names_the_node_hamilton_is_still_running(make_module, data_dir, instance):
    flow = make_module("""
        import time


        class Blob:
            pass


        def blob() -> Blob:
            return Blob()  # no safe storage format: the step fails storing it


        def slow(blob: Blob) -> int:
            time.sleep(3)
            return 1
    """)
    started = time.monotonic()
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    stopped_after = time.monotonic() - started
    assert not result.success
    warnings = [
        e.user_message for e in instance.all_logs(result.run_id) if "still running" in (e.user_message or "")
    ]
    assert len(warnings) == 1 and "still running slow after" in warnings[0], warnings
    assert stopped_after < 3  # the step did not wait for the node to finish


def test_the_delivery_thread_stops_when_closed_and_keeps_what_it_did_not_send(tmp_path):
    threads_before = set(threading.enumerate())
    sent = []
    gate = threading.Event()

    class SlowTransport:
        def emit(self, event):
            gate.wait(5)
            sent.append(event)

    delivery = LineageDelivery(LineageSpool(tmp_path / "spool"), SlowTransport)
    delivery.emit({"eventType": "START", "n": 1})
    deadline = time.monotonic() + 5
    while delivery.in_flight_since is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert delivery.close(timeout_s=0.2) is False  # busy sending: it says so and does not hang
    gate.set()
    assert delivery.close(timeout_s=5) is True
    delivery.emit({"eventType": "COMPLETE", "n": 2})  # spooled, but no thread starts after close
    time.sleep(0.2)
    assert [e["n"] for e in sent] == [1]
    assert [payload["n"] for _, payload in delivery.spool.pending()] == [2]
    assert [t for t in threading.enumerate() if t not in threads_before] == []
