"""The run worker is killed (SIGKILL) in the middle of a dataflow, on the default SQLite instance.

One `dagster dev` (webserver, daemon, code server) serves a four-asset chain whose second asset is
a 25 MB Parquet file (tests/faults/kill_flow.py). Runs are launched over GraphQL as the UI's
Materialize button does, or with `dagster asset materialize`, and killed the moment the temporary
file of `second` appears, i.e. in the middle of its write. Each test first stores every asset at
one version, then kills a run computing the next one, so any stored value can be told apart: it
must read back and equal the old value or the complete new one.

The instance has run monitoring on, with a maximum run time (what marks a killed CLI run failed),
and a run queue that runs one run per partition at a time (`tag_concurrency_limits` on
`dagster/partition`), the way to serialize runs of one partition.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from orchestration.lineage.runs import dagster_run
from orchestration.storage.store import ValueStore
from tests.faults import concurrent_flow, kill_flow
from tests.support import BIN, ROOT
from tests.support.dagster_dev import dagster_dev, workspace_for
from tests.support.processes import alive, descendants

pytestmark = [pytest.mark.services, pytest.mark.slow]  # `dagster dev`, `dagster asset materialize`
ASSETS = ["first", "second", "third", "fourth"]
WAIT_S = 180
MAX_RUNTIME_S = 20  # run monitoring's limit on this instance; every run here takes under 10 s
INSTANCE_YAML = f"""telemetry:
  enabled: false
run_monitoring:
  enabled: true
  poll_interval_seconds: 1
  max_runtime_seconds: {MAX_RUNTIME_S}
run_queue:
  max_concurrent_runs: 4
  tag_concurrency_limits:
    - key: dagster/partition
      value:
        applyLimitPerUniqueValue: true
      limit: 1
"""
_versions = itertools.count(1)


class Setup:
    def __init__(self, dev, instance, data_dir: Path, faults_dir: Path, env: dict[str, str]):
        self.dev, self.instance, self.data_dir, self.faults_dir, self.env = (
            dev,
            instance,
            data_dir,
            faults_dir,
            env,
        )

    def set_version(self, version: int) -> None:
        (self.faults_dir / "version").write_text(str(version))

    def calls(self) -> list[str]:
        """The functions that ran since the last look."""
        path = self.faults_dir / "calls"
        names = path.read_text().split() if path.exists() else []
        path.write_text("")
        return names

    def stored_versions(self, *candidates: int) -> dict[str, int]:
        """Which version each stored value is; every one must read back whole and be one of them."""
        store = ValueStore(self.data_dir / "assets")
        found = {}
        for name in ASSETS:
            value = store.read(dg.AssetKey(name))
            matching = [v for v in candidates if _equals(value, kill_flow._expected(name, v))]
            assert matching, f"{name} holds none of the versions {candidates}: {value!r}"[:500]
            found[name] = matching[0]
        return found

    def materialize_all(self) -> int:
        """Stores every asset at a fresh version, through a normal run; returns the version."""
        version = next(_versions)
        self.set_version(version)
        self.calls()
        run_id = self.dev.launch_run([[name] for name in ASSETS])
        assert self.dev.wait_for_run(run_id, WAIT_S) == "SUCCESS", self.dev.run_messages(run_id)
        assert self.calls() == ASSETS
        assert self.stored_versions(version) == dict.fromkeys(ASSETS, version)
        return version

    def temporaries(self) -> set[Path]:
        return set((self.data_dir / "assets" / "second").glob(".value.parquet.*.tmp"))

    def wait_for_write_of_second(self, what: str, before: set[Path], process=None) -> set[Path]:
        """Polls (every millisecond) until a new temporary file of `second` exists (earlier kills
        left theirs behind)."""
        deadline = time.monotonic() + WAIT_S
        while not (writing := self.temporaries() - before):
            assert time.monotonic() < deadline, f"second was never written by {what}"
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{what} ended (exit code {process.returncode}) before writing second")
            time.sleep(0.001)
        return writing

    def status(self, run_id: str) -> dg.DagsterRunStatus:
        return self.instance.get_run_by_id(run_id).status

    def wait_for_status(self, run_id: str, wanted: dg.DagsterRunStatus, since: float) -> float:
        """Seconds from `since` until the run has the status `wanted`."""
        while (now := self.status(run_id)) != wanted:
            assert now not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED), now
            assert time.monotonic() - since < WAIT_S, f"run {run_id} still {now} after {WAIT_S} s"
            time.sleep(0.1)
        return time.monotonic() - since

    def worker_pid(self, run_id: str) -> int:
        """The run worker's pid, from the engine event of the code server that started it."""
        for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if found := re.search(
                r"Started process for run \(pid: (\d+)\)", entry.dagster_event.message or ""
            ):
                return int(found.group(1))
        raise AssertionError(f"no run worker recorded for {run_id}")

    def events_of(self, run_id: str) -> list[str]:
        """Event types of the run's own OpenLineage run, as written to events.jsonl."""
        root = dagster_run(self.instance, run_id).openlineage_run_id
        path = self.data_dir / "lineage" / "events.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [e["eventType"] for e in map(json.loads, lines) if e["run"]["runId"] == root]

    def reexecute(self, run_id: str, strategy: str) -> str:
        """Re-executes as the UI's *Re-execute* menu does; returns the new run's id."""
        launched = self.dev.graphql(
            """mutation($params: ReexecutionParams!) { launchPipelineReexecution(reexecutionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {"params": {"parentRunId": run_id, "strategy": strategy}},
        )["launchPipelineReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]


def _equals(value, expected) -> bool:
    if isinstance(expected, pd.DataFrame):
        return isinstance(value, pd.DataFrame) and value.reset_index(drop=True).equals(expected)
    return value == expected


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed_worker")
    data_dir, home, faults_dir = root / "data", root / "dagster_home", root / "faults"
    home.mkdir()
    faults_dir.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    gate = faults_dir / "gate"  # open: `summary` waits while it is missing (see the run queue test)
    gate.touch()
    env = {
        "PIPELINE_DATA_DIR": str(data_dir),
        "FAULTS_DIR": str(faults_dir),
        "HAMILTON_TELEMETRY_ENABLED": "false",
        "FAULTS_GATE": str(gate),
    }
    env |= {k: "" for k in os.environ if k.startswith("OPENLINEAGE")}  # lineage to events.jsonl
    with (
        dagster_dev(workspace_for("tests.faults.kill_defs", home), home, env) as (dev, _),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        yield Setup(dev, instance, data_dir, faults_dir, env)


def test_a_killed_run_is_marked_failed_keeps_whole_values_and_resumes_from_asset_failure(setup, figures):
    old = setup.materialize_all()
    new = next(_versions)
    setup.set_version(new)
    before = setup.temporaries()
    run_id = setup.dev.launch_run([[name] for name in ASSETS])
    writing = setup.wait_for_write_of_second("the run", before)
    worker = setup.worker_pid(run_id)
    tree = [worker, *descendants(worker)]  # the step process, and Dagster's log tailers
    for pid in tree:  # all at once, as the OOM killer of a container or a crash would
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    marked_after = setup.wait_for_status(run_id, dg.DagsterRunStatus.FAILURE, killed_at)
    messages = " ".join(setup.dev.run_messages(run_id))
    assert "was terminated by signal 9 (SIGKILL)" in messages, messages
    assert [p for p in writing if p.exists()], "the kill did not land in the middle of the write"
    assert setup.stored_versions(old, new) == {"first": new, "second": old, "third": old, "fourth": old}
    ran = setup.calls()  # Hamilton computes ahead while the step stores: `third` may have run
    assert ran[:2] == ["first", "second"] and set(ran) <= set(ASSETS), ran

    started = time.monotonic()
    resumed = setup.reexecute(run_id, "FROM_ASSET_FAILURE")
    assert setup.dev.wait_for_run(resumed, WAIT_S) == "SUCCESS", setup.dev.run_messages(resumed)
    resumed_s = time.monotonic() - started
    assert setup.calls() == ["second", "third", "fourth"]  # `first` is loaded, not recomputed
    assert setup.stored_versions(new) == dict.fromkeys(ASSETS, new)

    deadline = time.monotonic() + 90
    while "FAIL" not in setup.events_of(run_id):  # from the daemon's openlineage_run_failed sensor
        assert time.monotonic() < deadline, (
            f"lineage of the killed run never ended: {setup.events_of(run_id)}"
        )
        time.sleep(0.5)
    assert setup.events_of(run_id) == ["START", "FAIL"]
    lineage_s = time.monotonic() - killed_at
    leftovers = [p for p in writing if p.exists()]
    sizes = [f"{p.parent.name}/{p.name} ({p.stat().st_size} bytes)" for p in leftovers]
    assert leftovers  # the re-execution's write left it: it could belong to a writer still at work

    hours_ago = time.time() - 2 * 3600
    for path in leftovers:  # once untouched for an hour, the next write of the value removes it
        os.utime(path, (hours_ago, hours_ago))
    setup.materialize_all()
    assert not [p for p in leftovers if p.exists()]
    figures["kill -9 of worker and step (dagster dev)"] = {
        "processes killed": len(tree),
        "marked FAILURE after s": round(marked_after, 2),
        "lineage FAIL (daemon sensor) after s": round(lineage_s, 1),
        "FROM_ASSET_FAILURE: functions run": 3,
        "of": 4,
        "re-execution incl. launch s": round(resumed_s, 1),
        "temporary files left behind by the kill": sizes,
    }


def test_the_step_process_dies_with_its_killed_run_worker(setup):
    old = setup.materialize_all()
    new = next(_versions)
    setup.set_version(new)
    (setup.faults_dir / "slow").write_text("")  # `third` takes 3 s, so the step outlives the kill
    try:
        before = setup.temporaries()
        run_id = setup.dev.launch_run([[name] for name in ASSETS])
        setup.wait_for_write_of_second("the run", before)
        worker = setup.worker_pid(run_id)
        steps = descendants(worker)
        os.kill(worker, signal.SIGKILL)  # the worker alone, as `kill -9 <pid shown in the run log>`
        killed_at = time.monotonic()
        setup.wait_for_status(run_id, dg.DagsterRunStatus.FAILURE, killed_at)
        while any(alive(pid) for pid in steps) and time.monotonic() - killed_at < 30:
            time.sleep(0.1)
        stored = setup.stored_versions(old, new)  # whole values, whatever happened
        materialized = {
            record.event_log_entry.dagster_event.asset_key.path[-1]
            for record in setup.instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
        }
        assert not materialized & {"third", "fourth"}, (
            f"the orphaned step went on after the run was marked failed: stored {stored}, "
            f"materialized {sorted(materialized)}, lineage {setup.events_of(run_id)}"
        )
    finally:
        (setup.faults_dir / "slow").unlink()


def test_a_killed_cli_run_stays_started_until_run_monitoring_times_it_out(setup, figures):
    """`dagster asset materialize` runs in the CLI's own process: no code server watches it, and
    the default run launcher cannot check its health, so only run monitoring's maximum run time
    (`run_monitoring: max_runtime_seconds`, or the run tag `dagster/max_runtime`) ends it."""
    old = setup.materialize_all()
    new = next(_versions)
    setup.set_version(new)
    before = setup.temporaries()
    with (setup.faults_dir / "cli.log").open("w") as log:
        cli = subprocess.Popen(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "tests.faults.kill_defs",
                "--select",
                ",".join(ASSETS),
            ],
            cwd=ROOT,
            env={**os.environ, **setup.env, "DAGSTER_HOME": str(setup.instance.root_directory)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        setup.wait_for_write_of_second("the CLI run", before, cli)
    except AssertionError as error:
        raise AssertionError(f"{error}:\n{(setup.faults_dir / 'cli.log').read_text()[-3000:]}") from None
    os.killpg(cli.pid, signal.SIGKILL)  # the CLI and its step process
    killed_at = time.monotonic()
    cli.wait()
    [run] = setup.instance.get_runs(limit=1)  # the newest: the CLI's
    time.sleep(5)  # the code server marked a killed worker failed within about a second
    assert setup.status(run.run_id) == dg.DagsterRunStatus.STARTED
    assert setup.stored_versions(old, new) == {"first": new, "second": old, "third": old, "fourth": old}

    failed_after = setup.wait_for_status(run.run_id, dg.DagsterRunStatus.FAILURE, killed_at)
    messages = " ".join(setup.dev.run_messages(run.run_id))
    assert f"exceeding maximum runtime of {MAX_RUNTIME_S} seconds" in messages, messages
    record = setup.instance.get_run_record_by_id(run.run_id)
    assert record.end_time - record.start_time >= MAX_RUNTIME_S
    figures["kill -9 of a `dagster asset materialize` run"] = {
        "status 5 s after": "STARTED",
        "marked FAILURE by run monitoring after s": round(failed_after, 1),
        "max_runtime_seconds": MAX_RUNTIME_S,
    }


def test_the_run_queue_runs_one_partition_at_a_time(setup, figures):
    """Two runs of partition p1 and one of p2, launched at once: the queue starts the second p1 run
    only when the first has finished, and p2 alongside; p1 ends with one run's value and summary."""

    def launch(partition: str, version: int) -> str:
        launched = setup.dev.graphql(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": "hamilton_pipelines",
                        "repositoryName": "__repository__",
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": ["value"]}, {"path": ["summary"]}],
                    },
                    "runConfigData": {"ops": {"concurrent_flow": {"config": {"version": version}}}},
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    gate = setup.faults_dir / "gate"
    gate.unlink()  # the runs wait before `summary` until both partitions' first runs have started
    try:
        first, second, other = launch("p1", 1), launch("p1", 2), launch("p2", 3)
        since = time.monotonic()
        setup.wait_for_status(other, dg.DagsterRunStatus.STARTED, since)
        while dg.DagsterRunStatus.STARTED not in (setup.status(first), setup.status(second)):
            assert time.monotonic() - since < WAIT_S, "no run of p1 started"
            time.sleep(0.1)
    finally:
        gate.touch()
    for run_id in (first, second, other):
        assert setup.dev.wait_for_run(run_id, WAIT_S) == "SUCCESS", setup.dev.run_messages(run_id)
    records = {run_id: setup.instance.get_run_record_by_id(run_id) for run_id in (first, second, other)}
    earlier, later = sorted((records[first], records[second]), key=lambda record: record.start_time)
    assert later.start_time >= earlier.end_time, "two runs of p1 ran at the same time"
    assert records[other].start_time < earlier.end_time and earlier.start_time < records[other].end_time
    store = ValueStore(setup.data_dir / "assets")
    version = 1 if later.dagster_run.run_id == first else 2
    assert store.read(dg.AssetKey("value"), "p1").equals(concurrent_flow._expected("p1", version))
    assert store.read(dg.AssetKey("summary"), "p1")["version"] == version
    figures["run queue, one run per partition"] = {
        "second p1 run waited s": round(later.start_time - earlier.start_time, 1),
        "p2 overlapped the first p1 run": True,
    }
