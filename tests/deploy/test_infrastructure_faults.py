"""The production profile (deploy/dagster.yaml on a real PostgreSQL) under infrastructure faults:
the database restarting under a run, and runs whose process is killed. The real webserver and
daemon serve `tests/deploy/fault_defs.py`; each test ends what it started, within bounded time.
Rows of docs/reliability.md ("Infrastructure faults").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.support import BIN, ROOT
from tests.support.dagster_dev import graphql, launch_run
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, postgres_fixture  # noqa: F401  (the `postgres` fixture)
from tests.support.processes import stop_group

pytestmark = pytest.mark.services  # PostgreSQL, the webserver and the daemon
LOCATION = "faults"
STEPS = [f"step_{i}" for i in range(1, 7)]
WAIT_S = 240  # every wait below is bounded by this
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass
class Site:
    """The production profile serving the fault code location: URLs, folders and the database."""

    postgres: PostgresServer
    url: str
    data: Path
    drops: Path
    env: dict[str, str]
    log: Path

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DAGSTER_PG_URL", self.env["DAGSTER_PG_URL"])
            with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
                yield instance

    def sql(self, statement: str, *args) -> list[tuple]:
        return self.postgres.query("faults", statement, *args)

    def status(self, run_id: str) -> str:
        return self.sql("SELECT status FROM runs WHERE run_id = %s", run_id)[0][0]

    def launch(self, job: str) -> str:
        """A run launched as the UI launches it: queued, then started by the daemon."""
        return launch_run(self.url, job, location=LOCATION)

    def messages(self, run_id: str) -> str:
        """The run's event messages, one per line, as the UI shows them."""
        events = self.sql("SELECT event FROM event_logs WHERE run_id = %s ORDER BY id", run_id)
        entries = [json.loads(event) for (event,) in events]
        return "\n".join(
            (entry.get("dagster_event") or {}).get("message") or entry.get("user_message") or ""
            for entry in entries
        )

    def materialized(self, run_id: str) -> list[str]:
        rows = self.sql(
            "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            run_id,
        )
        return sorted(key.strip('[]"') for (key,) in rows)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # the database may be restarting
            if result := condition():
                return result
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:g} s"
        time.sleep(0.5)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("faults")
    home, drops = data / "dagster_home", data / "drops"
    home.mkdir()
    drops.mkdir()
    (home / "dagster.yaml").symlink_to(ROOT / "deploy" / "dagster.yaml")
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: tests.deploy.fault_defs\n"
        f"      working_directory: {ROOT}\n      location_name: {LOCATION}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": postgres.create_database("faults"),
        "PIPELINE_DATA_DIR": str(data),
        "FAULT_DROP_DIR": str(drops),
        "FAULT_STEP_S": "2",
        "OPENLINEAGE_DISABLED": "true",
        "HAMILTON_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),  # this checkout's code in every process, whatever is installed
    }
    port, log = free_port(), data / "site.log"
    webserver = start(
        [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)], env, log
    )
    daemon = start([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, log)
    site = Site(postgres, f"http://127.0.0.1:{port}", data, drops, {**env, "WORKSPACE": str(workspace)}, log)
    try:
        wait_for(
            lambda: graphql(site.url, "{ workspaceOrError { __typename } }")["workspaceOrError"],
            "webserver",
        )
        yield site
    finally:
        for process in (daemon, webserver):
            stop_group(process, timeout_s=60)


def test_a_database_restart_mid_run_ends_the_run_and_everything_reconnects(site):
    run_id = site.launch("steady")
    wait_for(lambda: len(site.materialized(run_id)) >= 2, "second materialization")
    site.postgres.restart()  # pg_ctl restart -m fast: every connection dropped
    restarted = time.monotonic()

    status = wait_for(lambda: (s := site.status(run_id)) in FINISHED and s, "end of the run")
    ended_after_s = time.monotonic() - restarted
    if status == "FAILURE":  # the error must say it was the database
        messages = site.messages(run_id).lower()
        assert "connection" in messages or "database" in messages, messages
    else:
        assert status == "SUCCESS"
    print(f"database restart: run ended {status} {ended_after_s:.1f} s after the restart")

    for step, frame in stored_steps_available(site).items():  # nothing torn: every value reads whole
        assert frame["step"].eq(int(step.removeprefix("step_"))).all() and len(frame) == 2_000

    # The webserver and the daemon reconnect on their own: no request meets a connection the
    # restart closed (the webserver's pool checks them); a new run launches, starts and finishes.
    refused = []

    def launched() -> str | None:
        try:
            return site.launch("steady")
        except OSError as error:
            body = error.read().decode(errors="replace")[-600:] if hasattr(error, "read") else ""
            refused.append(f"{error} {body}")
            return None

    again = wait_for(launched, "a launch accepted after the restart")
    assert refused == []
    print(f"database restart: {len(refused)} launch request(s) refused before one was accepted")
    assert wait_for(lambda: (s := site.status(again)) in FINISHED and s, "run after the restart") == "SUCCESS"

    # The sensor carries on: one file, one run, even across the restart.
    (site.drops / "after-restart.request").touch()
    runs = wait_for(
        lambda: site.sql(
            "SELECT run_id FROM run_tags WHERE key = 'dagster/run_key' AND value = 'after-restart.request'"
        ),
        "sensor run",
    )
    time.sleep(6)  # three more sensor ticks: still one run for the file
    assert len(site.sql("SELECT run_id FROM run_tags WHERE key = 'dagster/run_key'")) == len(runs) == 1


def stored_steps_available(site: Site) -> dict[str, pd.DataFrame]:
    """The stored values that exist (a run that failed part-way stored only some)."""
    return {
        step: pd.read_parquet(path)
        for step in STEPS
        if (path := site.data / "assets" / step / "value.parquet").exists()
    }


def test_a_cli_run_killed_midway_is_failed_by_its_jobs_limit_and_a_longer_run_is_not(site):
    env = {**site.env, "FAULT_STEP_S": "4"}  # 24 s: longer than short_lived's 20 s limit
    long_run = start(
        [str(BIN / "dagster"), "job", "execute", "-m", "tests.deploy.fault_defs", "-j", "steady"],
        env,
        site.data / "steady-cli.log",
    )
    killed = start(
        [str(BIN / "dagster"), "job", "execute", "-m", "tests.deploy.fault_defs", "-j", "short_lived"],
        env,
        site.data / "short-lived-cli.log",
    )

    def run_of(job: str) -> str | None:
        rows = site.sql("SELECT run_id FROM runs WHERE pipeline_name = %s AND status = 'STARTED'", job)
        return rows[0][0] if rows else None

    short_id = wait_for(lambda: run_of("short_lived"), "short_lived run")
    wait_for(lambda: site.materialized(short_id), "first materialization of the run to kill")
    os.killpg(killed.pid, signal.SIGKILL)  # the CLI process and its step: nothing left to report
    killed.wait()
    killed_at = time.monotonic()

    assert long_run.wait(timeout=WAIT_S) == 0, (site.data / "steady-cli.log").read_text()[-3000:]
    assert wait_for(lambda: site.status(short_id) == "FAILURE", "failed run") is True
    failed_after_s = time.monotonic() - killed_at
    messages = site.messages(short_id)
    assert "Canceling due to exceeding maximum runtime of 20 seconds." in messages, messages
    assert "forcibly marked as failed" in messages
    print(f"killed CLI run failed {failed_after_s:.1f} s after the kill (limit 20 s, checked every 30 s)")
