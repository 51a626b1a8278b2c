"""A lineage backend outage across several runs, and its recovery with nobody flushing by hand.

tests/lineage/test_delivery.py covers each failure mode in one run, delivered afterwards by an
explicit `deliver_pending()`/`flush`. Here one process runs the ML dataflow again and again while
a real HTTP backend (`LineageReceiver`) refuses connections, then hangs, then answers 500, then
works again: every run must take about as long as with a working backend, and once the backend
is back the process's own background delivery must send every event of every run, each once,
with no runId shared between runs.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter

import dagster as dg
import pytest

from hamilton_pipelines import ml_pipeline
from orchestration import hamilton_assets
from orchestration.lineage import client as lineage_client
from orchestration.lineage import delivery as lineage_delivery
from tests.lineage.test_delivery import (
    assert_one_start_and_one_end_per_run_id,
    expected_count,
    of_run,
    root_run_id,
    spooled,
)
from tests.lineage.test_delivery import lineage_env as _lineage_env  # noqa: F401  (autouse: env and spool clean-up)
from tests.support.http_receiver import LineageReceiver

MODE_BOUND_S = 45.0  # the delivery thread backs off 0.5, 1, 2, 5, 10 then 30 s between attempts
RECOVERY_BOUND_S = 90.0  # the delivery thread backs off up to 30 s, and a hung send takes ~30 s
SLOWER_BOUND_S = 3.0  # a run may take at most this much longer than with a working backend


@pytest.fixture
def receiver():
    with LineageReceiver("ok") as backend:
        yield backend


@pytest.fixture
def ml_assets():
    return hamilton_assets(ml_pipeline)


def test_an_outage_of_every_kind_slows_no_run_and_loses_no_event(
    ml_assets, data_dir, instance, receiver, monkeypatch, figures
):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    # Shorter back-offs than in production (0.5 s up to 30 s): the same failures and recovery, sooner.
    monkeypatch.setattr(lineage_delivery, "BACKOFF_S", (0.2, 0.4, 0.8, 1.6))
    dg.materialize([ml_assets], instance=instance)  # imports and caches warm
    receiver.wait_for(expected_count(ml_assets), 10)

    seconds: dict[str, list[float]] = {}
    runs: list[str] = []

    def run(mode: str) -> None:
        receiver.set_mode(mode)
        started = time.monotonic()
        result = dg.materialize([ml_assets], instance=instance)
        seconds.setdefault(mode, []).append(time.monotonic() - started)
        assert result.success
        runs.append(root_run_id(instance, result))

    def tried(check, what: str) -> None:
        """Waits until the delivery thread has met the backend in this mode (it backs off)."""
        deadline = time.monotonic() + MODE_BOUND_S
        while not check():
            assert time.monotonic() < deadline, f"no delivery attempt {what} in {MODE_BOUND_S} s"
            time.sleep(0.1)

    delivery = lineage_client.delivery()
    run("ok")
    run("ok")
    run("500")
    run("500")
    tried(lambda: receiver.rejected > 0, "answered 500")
    run("refuse")
    run("refuse")
    tried(lambda: "refused" in (delivery.last_error or ""), "refused")
    run("hang")
    run("hang")
    tried(lambda: receiver.held > 0, "held without an answer")
    held, rejected = receiver.held, receiver.rejected
    backlog = len(spooled(data_dir))
    assert backlog >= 6 * expected_count(ml_assets)  # the runs of the outage, at least
    recovered_at = time.monotonic()
    run("ok")  # the backend is back; nobody flushes: the process's delivery thread sends everything

    total = (len(runs) + 1) * expected_count(ml_assets)  # and the warm-up run
    received = receiver.wait_for(total, RECOVERY_BOUND_S)
    delivered_after = time.monotonic() - recovered_at
    assert len(received) == total, f"{len(received)} of {total} events after {RECOVERY_BOUND_S} s"
    deadline = time.monotonic() + 10
    while spooled(data_dir):  # a batch leaves the spool once all of it was sent
        assert time.monotonic() < deadline, f"{len(spooled(data_dir))} delivered events still spooled"
        time.sleep(0.1)
    received = receiver.events
    assert len({json.dumps(e, sort_keys=True) for e in received}) == total  # no event twice
    for root in runs:
        events = of_run(received, root)
        assert len(events) == expected_count(ml_assets), root
        assert_one_start_and_one_end_per_run_id(events)
        assert events[-1]["eventType"] == "COMPLETE" and events[-1]["run"]["runId"] == root
    assert len(set(runs)) == len(runs)
    run_ids = Counter(e["run"]["runId"] for e in received if e["eventType"] == "START")
    assert set(run_ids.values()) == {1}  # no runId started twice, across runs and assets

    normal = statistics.median(seconds["ok"])
    for mode in ["refuse", "hang", "500"]:
        assert max(seconds[mode]) - normal < SLOWER_BOUND_S, (mode, seconds)
    figures["lineage backend outage"] = {
        "run s by backend mode": {mode: [round(s, 2) for s in values] for mode, values in seconds.items()},
        "events spooled during outage": backlog,
        "requests held (hang)": held,
        "answered 500": rejected,
        "all delivered after recovery s": round(delivered_after, 1),
        "events delivered": total,
    }
