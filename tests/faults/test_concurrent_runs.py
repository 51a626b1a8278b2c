"""Concurrent runs: several `dagster asset materialize` processes at once against one on-disk
SQLite DAGSTER_HOME, as cron jobs or a CI matrix would start them.

The instance is created first with `dagster instance migrate`: on a DAGSTER_HOME that has never
been used, concurrent first runs race to create SQLite's schema and fail
(`alembic ... Version table 'alembic_version' has more than one head present`, or
`UNIQUE constraint failed: alembic_version.version_num`), so a deployment must initialize it
once (`dagster dev` and `dagster instance migrate` do).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from orchestration.storage.store import ValueStore
from tests.faults import concurrent_flow
from tests.support import BIN, ROOT, migrate_instance
from tests.support.postgres import postgres_fixture  # noqa: F401  (the `postgres` fixture)

pytestmark = [pytest.mark.services, pytest.mark.slow]  # CLI runs, PostgreSQL, a process pool
WAIT_S = 300
POOL = "faults_store"  # concurrent_defs' pool


@dataclass
class Home:
    path: Path
    data_dir: Path
    env: dict[str, str]

    def materialize(self, partition: str, version: int, **env: str) -> subprocess.Popen:
        config = f'{{"ops": {{"concurrent_flow": {{"config": {{"version": {version}}}}}}}}}'
        return subprocess.Popen(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "tests.faults.concurrent_defs",
                "--select",
                "*",
                "--partition",
                partition,
                "--config-json",
                config,
            ],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.path))

    def stored(self, partition: str) -> tuple[object, dict]:
        store = ValueStore(self.data_dir / "assets")
        return store.read(dg.AssetKey("value"), partition), store.read(dg.AssetKey("summary"), partition)


def finish(processes: list[subprocess.Popen]) -> list[str]:
    outputs = [process.communicate(timeout=WAIT_S)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
        assert "database is locked" not in output, output[-4000:]
    return outputs


def version_of(value, partition: str, candidates) -> int:
    """Which version a stored value is; it must read back whole and equal one of them."""
    for version in candidates:
        if value.equals(concurrent_flow._expected(partition, version)):
            return version
    raise AssertionError(f"the stored value of {partition} is none of the versions {candidates}")


def step_window(instance, run_id: str) -> tuple[float, float]:
    """When the run's step started and succeeded."""

    def at(kind):
        [record] = instance.get_records_for_run(run_id, of_type=kind).records
        return record.event_log_entry.timestamp

    return at(dg.DagsterEventType.STEP_START), at(dg.DagsterEventType.STEP_SUCCESS)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    root = tmp_path_factory.mktemp("concurrent")
    path, data_dir = root / "dagster_home", root / "data"
    path.mkdir()
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(path),
        "PIPELINE_DATA_DIR": str(data_dir),
        "HAMILTON_TELEMETRY_ENABLED": "false",
        "OPENLINEAGE_DISABLED": "true",
    }
    migrate_instance(env, WAIT_S)
    return Home(path, data_dir, env)


def test_different_partitions_at_once_all_succeed_with_their_own_values(home, figures):
    partitions = ["p1", "p2", "p3", "p4"]
    started = time.monotonic()
    finish([home.materialize(partition, version) for version, partition in enumerate(partitions, 1)])
    took = time.monotonic() - started

    for version, partition in enumerate(partitions, 1):
        value, summary = home.stored(partition)
        assert version_of(value, partition, [version]) == version
        assert summary == {"partition": partition, "version": version, "sum": float(value["noise"].sum())}
    with home.instance() as instance:
        runs = instance.get_runs()
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 4
        windows = [step_window(instance, run.run_id) for run in runs]
    assert max(start for start, _ in windows) < min(end for _, end in windows)  # all four at once
    figures["4 partitions at once (CLI, SQLite)"] = {"wall s": round(took, 1), "database is locked": 0}


def test_two_runs_of_one_partition_never_tear_a_value_but_can_leave_assets_of_different_runs(
    home, tmp_path, figures
):
    """No pool limit: both runs write the same files. Every read, at any moment, gets a whole value
    of one run (atomic replace); but each asset keeps its last writer's value, so when run A stores
    `value`, run B stores `value` and `summary`, and A stores `summary` last, the partition holds
    B's value with A's summary."""
    old = version_of(home.stored("p1")[0], "p1", range(1, 5))
    reads, stop = [], threading.Event()

    def read_while_they_write() -> None:
        while not stop.is_set():
            reads.append(version_of(home.stored("p1")[0], "p1", [old, 11, 12]))

    reader = threading.Thread(target=read_while_they_write)
    reader.start()
    gate = tmp_path / "gate"
    try:
        run_a = home.materialize("p1", 11, FAULTS_GATE=str(gate))  # stops before storing `summary`
        deadline = time.monotonic() + WAIT_S
        while not reads or reads[-1] != 11:
            assert run_a.poll() is None and time.monotonic() < deadline, "run A never stored `value`"
            time.sleep(0.05)
        finish([home.materialize("p1", 12)])  # run B, from start to end
        gate.touch()
        finish([run_a])
    finally:
        stop.set()
        reader.join()

    value, summary = home.stored("p1")
    assert version_of(value, "p1", [11, 12]) == 12 and summary["version"] == 11
    assert set(reads) == {old, 11, 12} and len(reads) > 10
    figures["2 runs of one partition, no pool"] = {
        "reads while they wrote": len(reads),
        "versions seen": sorted(set(reads)),
        "stored value / summary from run": ["B", "A"],
    }


def claim_at(args: tuple[str, dict[str, str], float, str]) -> bool:
    """In a process of its own: claims the pool's slot for `run_id` at the wall-clock `start`."""
    home, env, start, run_id = args
    os.environ.update(env)
    with dg.DagsterInstance.from_config(home) as instance:
        storage = instance.event_log_storage
        while time.time() < start:
            pass
        return storage.claim_concurrency_slot(POOL, run_id, "step").is_claimed


@pytest.fixture(params=["sqlite", "postgresql"])
def pool_instance(request, tmp_path):
    """A DAGSTER_HOME with a pool limit of 1: this module's SQLite one, or the production profile
    (deploy/dagster.yaml) on a real PostgreSQL server."""
    if request.param == "sqlite":
        home, env = request.getfixturevalue("home"), {}
        path = home.path
    else:
        postgres = request.getfixturevalue("postgres")
        path = tmp_path / "dagster_home_prod"
        path.mkdir()
        (path / "dagster.yaml").symlink_to(ROOT / "deploy" / "dagster.yaml")
        env = {"DAGSTER_PG_URL": postgres.create_database(f"pool_{uuid.uuid4().hex[:12]}")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(path)) as instance:
            instance.event_log_storage.set_concurrency_slots(POOL, 1)
        yield str(path), env
        with dg.DagsterInstance.from_config(str(path)) as instance:
            instance.event_log_storage.delete_concurrency_limit(POOL)


def test_a_pool_slot_that_is_taken_blocks_the_next_claim(pool_instance):
    path, _ = pool_instance
    with dg.DagsterInstance.from_config(path) as instance:
        storage = instance.event_log_storage
        assert storage.claim_concurrency_slot(POOL, "first-run", "step").is_claimed
        assert not storage.claim_concurrency_slot(POOL, "second-run", "step").is_claimed
        storage.free_concurrency_slots_for_run("first-run")
        assert storage.claim_concurrency_slot(POOL, "second-run", "step").is_claimed
        storage.free_concurrency_slots_for_run("second-run")


MAX_TRIES = 100  # both claims of a pair got the slot in 3 to 14 pairs of 20 in our runs


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Dagster's pool slots are claimed without a lock: _claim_concurrency_slot in "
        "dagster/_core/storage/event_log/sql_event_log.py (dagster 1.13.27, line ~2932) selects a free slot "
        "with FOR UPDATE SKIP LOCKED outside a transaction (a no-op on SQLite; released at once on "
        "PostgreSQL in autocommit), then updates it by id without re-checking step_key IS NULL, so two "
        "steps claiming within milliseconds both get the single slot (in our runs: 6 to 14 pairs in 20 on SQLite, "
        "3 to 9 in 20 on PostgreSQL). Two CLI runs of one partition with pool limit 1 overlapped this way. "
        "Fix upstream: add `step_key IS NULL` to that UPDATE's WHERE (its rowcount is already checked). "
        "Here: serialize runs of one partition with the run queue's per-partition tag limit instead "
        "(tests/faults/test_killed_worker.py::test_the_run_queue_runs_one_partition_at_a_time)."
    ),
)
def test_two_simultaneous_claims_never_both_get_the_single_pool_slot(pool_instance, figures):
    import multiprocessing

    path, env = pool_instance
    doubled, tries = 0, 0
    with (
        multiprocessing.get_context("spawn").Pool(2) as pool,
        dg.DagsterInstance.from_config(path) as instance,
    ):
        while tries < MAX_TRIES and not doubled:  # until two claims both get the slot
            start = time.time() + (1.0 if tries == 0 else 0.3)  # both claimers are waiting by then
            runs = [f"run-{tries}-a", f"run-{tries}-b"]
            doubled += all(pool.map(claim_at, [(path, env, start, run_id) for run_id in runs]))
            tries += 1
            for run_id in runs:
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    storage = "PostgreSQL" if env else "SQLite"
    figures.setdefault("pairs of simultaneous claims until both got a 1-slot pool", {})[storage] = tries
    assert not doubled, (
        f"after {tries} pairs of simultaneous claims, both claims of a pair got the single slot"
    )
