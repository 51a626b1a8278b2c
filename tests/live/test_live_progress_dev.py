"""Live progress of a long Hamilton node, and terminating it, in a real `dagster dev`.

One `dagster dev` (webserver, daemon, code server; private DAGSTER_HOME and PIPELINE_DATA_DIR)
serves tests/live/slow_flow.py: `fast_a` -> `slow` (sleeps 30 s) -> `after`, as one multi-asset
with the default executor (the step in a process of its own) and the lineage sensors.

A run of all three assets is launched over GraphQL as the UI's Materialize button does. While
`slow` runs, its step writes one run-log line `running slow [k/N ...` (after the live-progress
threshold, 1 s by default; `fast_a` finishes sooner and writes none). The run is then terminated
as the UI's Terminate button does (`terminateRun`), which in Dagster 1.13 goes: DefaultRunLauncher
-> code server `CancelExecution` -> the run worker's termination thread sends SIGINT to its own
process -> the multiprocess executor sets the step's termination event -> the step process's
termination thread sends SIGINT to itself -> the handler Dagster installs around user code
raises `DagsterExecutionInterruptedError` in the step's main thread, which is waiting for
Hamilton's results (Hamilton's worker thread, still in `slow`, is a daemon thread and dies with the
process). So the run must be CANCELED within seconds, not when `slow` would have finished, and
must leave `fast_a` stored, `slow` and `after` not, and no temporary file behind.

Lineage: the daemon's `openlineage_run_canceled` sensor ends the run with ABORT and closes the
asset run of `slow` (whose START was spooled while it ran) with ABORT, each exactly once.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.lineage.runs import dagster_run
from orchestration.storage.store import ValueStore
from tests.live.slow_flow import SLOW_S
from tests.support.dagster_dev import FINISHED, LOCATION, DagsterDev, dagster_dev, workspace_for
from tests.support.processes import alive

pytestmark = [pytest.mark.services, pytest.mark.slow]  # `dagster dev`
ASSETS = ["fast_a", "slow", "after"]
WAIT_S = 180  # generous: process starts and imports on a busy 2-CPU machine
CANCELED_WITHIN_S = 15  # terminate -> CANCELED; `slow` alone would take SLOW_S more
LINEAGE_WAIT_S = 90  # the run-status sensor ticks every 30 s in the daemon
RUNNING_SLOW = re.compile(r"running slow \[(\d+)/(\d+)\b")


class Live:
    """The running `dagster dev`, its instance (read directly) and its data directory."""

    def __init__(self, dev: DagsterDev, instance: dg.DagsterInstance, data_dir: Path):
        self.dev, self.instance, self.data_dir = dev, instance, data_dir

    def status(self, run_id: str) -> str:
        return self.dev.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )["runOrError"]["status"]

    def log(self, run_id: str) -> list[dict]:
        """The run's log events in order: type, message, and the asset of a materialization."""
        return self.dev.graphql(
            """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
                 __typename ... on MessageEvent { message level }
                 ... on MaterializationEvent { assetKey { path } } } } } }""",
            {"id": run_id},
        )["logsForRun"]["events"]

    def wait_for_first_sensor_tick(self, sensor: str) -> None:
        """A run-status sensor's first tick only sets its cursor: a run that ends before it is never
        seen. So the run is launched only once the daemon has ticked the sensor."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = self.dev.graphql(
                """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
                     ... on Sensor { sensorState { status ticks(limit: 1) { status } } } } }""",
                {
                    "s": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": "__repository__",
                        "sensorName": sensor,
                    }
                },
            )["sensorOrError"]
            assert found["__typename"] == "Sensor", found
            if found["sensorState"]["ticks"]:
                return
            assert time.monotonic() < deadline, f"sensor {sensor} never ticked: {found}"
            time.sleep(1)

    def wait_for_running_line(self, run_id: str) -> list[dict]:
        """Polls the run log until `slow`'s `running` line is there; returns the log at that moment.
        Fails as soon as `slow` is materialized or the run ends without one."""
        deadline = time.monotonic() + WAIT_S
        while True:
            events = self.log(run_id)
            messages = [e.get("message") or "" for e in events]
            if any(m.startswith("running slow [") for m in messages):
                return events
            status = self.status(run_id)
            assert "slow" not in materialized(events) and status not in FINISHED, (
                f"`slow` finished, or the run ended, without a `running slow [` line (run {status}): {messages}"
            )
            assert time.monotonic() < deadline, f"no `running slow [` line after {WAIT_S} s: {messages}"
            time.sleep(0.25)

    def terminate(self, run_id: str) -> None:
        """As the UI's Terminate button: the safe policy (interrupt the run worker, let it stop)."""
        result = self.dev.graphql(
            """mutation($id: String!) { terminateRun(runId: $id, terminatePolicy: SAFE_TERMINATE) {
                 __typename ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
            {"id": run_id},
        )["terminateRun"]
        assert result["__typename"] == "TerminateRunSuccess", result

    def wait_until_finished(self, run_id: str) -> tuple[str, float]:
        """Polls every 0.1 s; returns the final status and the seconds it took."""
        started = time.monotonic()
        while (status := self.status(run_id)) not in FINISHED:
            assert time.monotonic() - started < WAIT_S, f"run {run_id} still {status} after {WAIT_S} s"
            time.sleep(0.1)
        return status, time.monotonic() - started

    def step_pid(self, run_id: str) -> int:
        """The step process's pid, from Dagster's "Executing step ... in subprocess" event."""
        [entry] = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
        return entry.dagster_event.pid

    def lineage_events(self) -> list[dict]:
        path = self.data_dir / "lineage" / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def materialized(events: list[dict]) -> list[str]:
    return ["/".join(e["assetKey"]["path"]) for e in events if e["__typename"] == "MaterializationEvent"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_progress")
    data_dir, home = root / "data", root / "dagster_home"
    home.mkdir()
    env = {"PIPELINE_DATA_DIR": str(data_dir), "HAMILTON_TELEMETRY_ENABLED": "false"}
    env |= {k: "" for k in os.environ if k.startswith("OPENLINEAGE")}  # lineage to events.jsonl
    with (
        dagster_dev(workspace_for("tests.live.slow_defs", home), home, env) as (dev, _),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        yield Live(dev, instance, data_dir)


def test_a_long_node_shows_as_running_and_terminating_it_cancels_the_run_at_once(live):
    live.wait_for_first_sensor_tick("openlineage_run_canceled")
    run_id = live.dev.launch_run([[name] for name in ASSETS])

    # 3. While `slow` runs: one `running slow [k/N` line, before any materialization of it.
    events = live.wait_for_running_line(run_id)
    assert live.status(run_id) == "STARTED"
    messages = [e.get("message") or "" for e in events]
    [line] = [m for m in messages if m.startswith("running slow [")]
    position = RUNNING_SLOW.match(line)
    # [k/N]: k assets of the run's 3 are done (fast_a), as in every progress line.
    assert position and position.group(1, 2) == ("1", "3"), line
    assert "slow" not in materialized(events), events
    assert not [m for m in messages if m.startswith("running fast_a")], messages

    # 4. Terminate as the UI does: CANCELED within seconds, the step process gone.
    pid = live.step_pid(run_id)
    terminated_at = datetime.now(UTC)
    live.terminate(run_id)
    status, canceled_s = live.wait_until_finished(run_id)
    print(f"\nterminateRun -> {status} in {canceled_s:.2f} s (slow would have run {SLOW_S:.0f} s)")
    events = live.log(run_id)
    messages = [e.get("message") or "" for e in events]
    assert status == "CANCELED", messages
    assert canceled_s <= CANCELED_WITHIN_S, f"CANCELED only after {canceled_s:.1f} s: {messages}"
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"step process {pid} still alive 10 s after CANCELED"
        time.sleep(0.1)
    assert materialized(events) == ["fast_a"], events
    assert len([m for m in messages if m.startswith("running slow [")]) == 1, messages  # no heartbeat yet
    assert not [m for m in messages if m.startswith("running ") and not m.startswith("running slow [")], (
        messages
    )

    # 5. Nothing half-written: `fast_a` stored, `slow` and `after` not, no temporary file.
    store_root = live.data_dir / "assets"
    store = ValueStore(store_root)
    assert [store.exists(dg.AssetKey(name)) for name in ASSETS] == [True, False, False]
    assert [p for p in store_root.rglob("*") if p.name.endswith(".tmp")] == []

    # 6. Lineage: ABORT for the run and for `slow` (started while it ran), each exactly once.
    run = dagster_run(live.instance, run_id)
    by_run = {run.openlineage_run_id: "run", **{run.asset_run_id(name): name for name in ASSETS}}

    def event_types() -> dict[str, list[str]]:
        found = defaultdict(list)
        for event in live.lineage_events():
            if event["run"]["runId"] in by_run:
                found[by_run[event["run"]["runId"]]].append(event["eventType"])
        return found

    deadline = time.monotonic() + LINEAGE_WAIT_S
    while not ("ABORT" in event_types()["run"] and "ABORT" in event_types()["slow"]):
        assert time.monotonic() < deadline, f"no ABORT after {LINEAGE_WAIT_S} s: {dict(event_types())}"
        time.sleep(0.5)
    time.sleep(2)  # anything emitted twice would be on its way by now
    found = event_types()
    assert found["run"] == ["START", "ABORT"], dict(found)
    assert found["slow"] == ["START", "ABORT"], dict(found)
    assert found["fast_a"] == ["START", "COMPLETE"], dict(found)
    assert found["after"] == [], dict(found)
    [slow_start] = [
        e
        for e in live.lineage_events()
        if e["run"]["runId"] == run.asset_run_id("slow") and e["eventType"] == "START"
    ]
    assert datetime.fromisoformat(slow_start["eventTime"]) < terminated_at, slow_start  # while it ran
    assert [store.exists(dg.AssetKey(name)) for name in ASSETS] == [True, False, False]  # still
