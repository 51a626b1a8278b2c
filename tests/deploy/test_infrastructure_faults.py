"""The production profile (deploy/dagster.yaml on a real PostgreSQL) under infrastructure faults
and load: the database restarting under a run; a run's worker, the webserver or the daemon killed
(mid sensor tick, mid schedule tick); 200 runs queued at once. The real webserver and daemon serve
`tests/deploy/fault_defs.py`; every wait is bounded and every process started is ended with the
module. Rows of docs/reliability.md ("Infrastructure faults").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.support import BIN, ROOT
from tests.support.dagster_dev import graphql, launch_run
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, postgres_fixture  # noqa: F401  (the `postgres` fixture)
from tests.support.processes import descendants, group_members, stop_group

pytestmark = pytest.mark.services  # PostgreSQL, the webserver and the daemon
LOCATION = "faults"
STEPS = [f"step_{i}" for i in range(1, 7)]
WAIT_S = 240  # every wait below is bounded by this
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass
class Site:
    """The production profile serving the fault code location: its processes, URLs, folders and
    database. Tests kill and restart the webserver and the daemon; every process group they ever
    led is ended when the module is done."""

    postgres: PostgresServer
    data: Path
    drops: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    webserver: subprocess.Popen | None = None
    daemon: subprocess.Popen | None = None
    started: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    def start_webserver(self) -> None:
        self.webserver = self._start(
            ["dagster-webserver", "-h", "127.0.0.1", "-p", str(self.port)], self.home
        )
        wait_for(lambda: graphql(self.url, "{ workspaceOrError { __typename } }"), "webserver")

    def start_daemon(self, max_concurrent_runs: int = 4) -> None:
        """The daemon on deploy/dagster.yaml, or on a copy with another run queue limit."""
        home = self.home
        if max_concurrent_runs != 4:
            home = self.data / f"home-limit-{max_concurrent_runs}"
            home.mkdir(exist_ok=True)
            profile = (ROOT / "deploy" / "dagster.yaml").read_text()
            assert "max_concurrent_runs: 4" in profile
            (home / "dagster.yaml").write_text(
                profile.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {max_concurrent_runs}")
            )
        self.daemon = self._start(["dagster-daemon", "run"], home)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL to the process alone, as the OOM killer does: its children live on."""
        process.kill()
        process.wait()

    def _start(self, command: list[str], home: Path) -> subprocess.Popen:
        process = start(
            [str(BIN / command[0]), *command[1:], "-w", str(self.home / "workspace.yaml")],
            {**self.env, "DAGSTER_HOME": str(home)},
            self.data / "site.log",
        )
        self.started.append(process)
        return process

    def restart_daemon(self, max_concurrent_runs: int = 4) -> None:
        assert self.daemon is not None
        stop_group(self.daemon, timeout_s=60)
        self.start_daemon(max_concurrent_runs)

    def stop(self) -> None:
        for process in reversed(self.started):  # with whatever its killed leader left behind
            stop_group(process, timeout_s=60)

    def sql(self, statement: str, *args) -> list[tuple]:
        return self.postgres.query("faults", statement, *args)

    def status(self, run_id: str) -> str:
        return self.sql("SELECT status FROM runs WHERE run_id = %s", run_id)[0][0]

    def launch(self, job: str) -> str:
        """A run launched as the UI launches it: queued, then started by the daemon."""
        return launch_run(self.url, job, location=LOCATION)

    def land(self, *days: str) -> None:
        """Exports landing, one `<day>.csv` each, each with content of its own."""
        for day in days:
            (self.drops / f"{day}.csv").write_text(f"day,amount\n{day},1\n")

    def of_landed(self, columns: str, days: Iterable[str]) -> list[tuple]:
        """`columns` of the runs (`r`) the landing sensor made for the days' files (`t`: the file tag)."""
        return self.sql(
            f"SELECT {columns} FROM run_tags t JOIN runs r ON r.run_id = t.run_id"
            " WHERE t.key = 'landing/file' AND t.value = ANY(%s)",
            [f"{day}.csv" for day in days],
        )

    def landed_runs(self, days: Iterable[str]) -> dict[str, list[str]]:
        """The statuses of the runs the landing sensor made for each day's file."""
        runs: dict[str, list[str]] = {}
        for file, status in self.of_landed("t.value, r.status", days):
            runs.setdefault(file.removesuffix(".csv"), []).append(status)
        return runs

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


def all_ended(runs: dict[str, list[str]], landed: list[str]) -> bool:
    """Whether every landed day has its run and every such run has ended (`landed_runs`)."""
    return len(runs) == len(landed) and all(
        status in FINISHED for statuses in runs.values() for status in statuses
    )


def days(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range(count)]


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # the database may be restarting
            if result := condition():
                return result
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:g} s"
        time.sleep(every_s)


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
    (home / "workspace.yaml").write_text(
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
        "FAULT_TICK_S": "5",  # a schedule evaluation long enough to be interrupted
        "FAULT_DAY_S": "3",  # daily runs long enough to fill the run queue's slots
        "OPENLINEAGE_DISABLED": "true",
        "HAMILTON_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),  # this checkout's code in every process, whatever is installed
    }
    site = Site(postgres, data, drops, env)
    try:
        site.start_webserver()
        site.start_daemon()
        yield site
    finally:
        site.stop()


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

    # The landing sensor carries on: one file, one run, even across the restart.
    site.land(day := "2021-01-01")
    wait_for(lambda: site.landed_runs([day]), "landing sensor run")
    time.sleep(6)  # three more sensor ticks: still one run for the file
    assert len(site.landed_runs([day])[day]) == 1


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


def worker_of(site: Site, run_id: str) -> int | None:
    """The pid of the run's worker process, as its launch event gives it."""
    for (event,) in site.sql("SELECT event FROM event_logs WHERE run_id = %s", run_id):
        if found := re.search(r"Started process for run \(pid: (\d+)\)", event):
            return int(found.group(1))
    return None


def test_a_run_whose_worker_dies_is_failed_at_once(site):
    run_id = site.launch("steady")
    worker = wait_for(lambda: worker_of(site, run_id), "run worker")
    wait_for(lambda: site.materialized(run_id), "first materialization")
    for pid in [worker, *descendants(worker)]:  # its step process dies with it, as in a crash
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: site.status(run_id) == "FAILURE", "failed run", every_s=0.1)
    print(f"killed run worker: run FAILURE {time.monotonic() - killed:.1f} s after the kill")
    assert "SIGKILL" in site.messages(run_id)


def test_runs_in_flight_finish_while_the_webserver_is_down_and_show_when_it_is_back(site):
    runs = [site.launch("steady") for _ in range(2)]
    wait_for(lambda: all(site.status(run) == "STARTED" for run in runs), "both runs started")
    site.kill(site.webserver)
    wait_for(lambda: all(site.status(run) in FINISHED for run in runs), "end of the runs")
    assert [site.status(run) for run in runs] == ["SUCCESS", "SUCCESS"]

    back = time.monotonic()
    site.start_webserver()
    print(f"webserver killed with 2 runs in flight: both SUCCESS; back in {time.monotonic() - back:.1f} s")
    shown = graphql(
        site.url,
        """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
             ... on Runs { results { runId status } } } }""",
        {"ids": runs},
    )["runsOrError"]["results"]
    assert sorted((run["runId"], run["status"]) for run in shown) == sorted((run, "SUCCESS") for run in runs)


def test_the_daemon_killed_mid_sensor_tick_still_gives_each_landed_file_one_run(site):
    in_flight = [site.launch("steady") for _ in range(4)]  # every slot taken: landed runs must queue
    wait_for(lambda: all(site.status(run) == "STARTED" for run in in_flight), "4 runs in flight")
    landed = days("2022-01-01", 40)
    site.land(*landed)
    partway = wait_for(
        lambda: 0 < (count := len(site.landed_runs(landed))) < len(landed) and count,
        "the tick's first runs",
        every_s=0.02,
    )
    killed = site.daemon
    site.kill(killed)
    tick = site.sql(
        "SELECT status FROM job_ticks WHERE tick_body LIKE '%%landed_days%%' ORDER BY id DESC LIMIT 1"
    )
    assert tick == [("STARTED",)], "the kill came after the tick, not during it"
    waiting = site.landed_runs(landed)  # created (NOT_STARTED) or queued: no slot is free
    assert all(statuses in (["NOT_STARTED"], ["QUEUED"]) for statuses in waiting.values()), waiting

    restarted = time.monotonic()
    site.start_daemon()
    wait_for(lambda: all_ended(site.landed_runs(landed), landed), "every landed file's run finished")
    print(
        f"daemon killed mid-tick ({partway} of {len(landed)} runs made, {sorted(waiting.values())}, 4 in flight): "
        f"the rest submitted, all finished {time.monotonic() - restarted:.1f} s after the restart"
    )
    time.sleep(6)  # three more sensor ticks: still one run per file
    assert site.landed_runs(landed) == {day: ["SUCCESS"] for day in landed}
    # The runs in flight were the killed daemon's code server's; they finished, and then that server
    # shut down on its own (it stops once its runs are done, when the daemon's heartbeats stop).
    assert [site.status(run) for run in in_flight] == ["SUCCESS"] * 4
    wait_for(lambda: not group_members(killed.pid), "the killed daemon's code server to exit", timeout_s=120)


def test_the_daemon_killed_mid_schedule_tick_fires_that_tick_once(site):
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "scheduleName": "every_minute",
    }
    started = graphql(
        site.url,
        """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
             __typename ... on ScheduleStateResult { scheduleState { id } } } }""",
        {"selector": selector},
    )["startSchedule"]
    assert started["__typename"] == "ScheduleStateResult", started
    try:
        ticks = site.drops / "ticks"
        tick = wait_for(
            lambda: next(ticks.iterdir(), None) if ticks.exists() else None, "a schedule tick", every_s=0.1
        )
        site.kill(site.daemon)  # the tick's evaluation takes FAULT_TICK_S: it is under way
        site.start_daemon()

        def runs_of_the_schedule() -> list[tuple]:
            return site.sql(
                "SELECT t.value, r.run_id FROM run_tags t JOIN runs r ON r.run_id = t.run_id"
                " JOIN run_tags s ON s.run_id = r.run_id"
                " WHERE t.key = '.dagster/scheduled_execution_time'"
                " AND s.key = 'dagster/schedule_name' AND s.value = 'every_minute'"
            )

        wait_for(runs_of_the_schedule, "the interrupted tick's run")
        time.sleep(8)  # the resumed tick and a few more scheduler loops
        runs = runs_of_the_schedule()
        times = [time_ for time_, _ in runs]
        assert len(times) == len(set(times)), f"a tick fired twice: {runs}"
        assert any(dt.datetime.fromisoformat(time_).strftime("%H%M") == tick.name for time_ in times), (
            tick,
            runs,
        )
        print(
            f"daemon killed mid schedule tick {tick.name}: {len(runs)} run(s) for {len(set(times))} tick(s)"
        )
    finally:
        graphql(
            site.url,
            """mutation($id: String!) { stopRunningSchedule(id: $id) { __typename } }""",
            {"id": started["scheduleState"]["id"]},
        )


@dataclass
class Drained:
    runs: dict[str, list[str]]  # each landed day's run statuses
    wall_s: float
    most_at_once: int  # sampled: runs STARTING, STARTED or CANCELING
    most_overlapping: int  # from the runs' own start and end times

    @property
    def per_minute(self) -> float:
        return len(self.runs) / self.wall_s * 60


def drain(site: Site, landed: list[str]) -> Drained:
    """Lands one file per day and samples the run queue until every run has finished."""
    started, most = time.monotonic(), 0
    site.land(*landed)
    deadline = started + 1_200
    while True:
        [(busy,)] = site.sql("SELECT count(*) FROM runs WHERE status IN ('STARTING', 'STARTED', 'CANCELING')")
        most = max(most, busy)
        if all_ended(runs := site.landed_runs(landed), landed):
            break
        assert time.monotonic() < deadline, f"{len(runs)} of {len(landed)} files have runs after 20 minutes"
        time.sleep(0.25)
    wall_s = time.monotonic() - started
    spans = site.of_landed("r.start_time, r.end_time", landed)
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    overlapping = max(itertools.accumulate(change for _, change in edges))
    return Drained(runs, wall_s, most, overlapping)


def test_a_queue_of_200_landed_runs_all_complete_at_most_4_at_a_time(site):
    first, second = days("2023-01-01", 12), days("2024-01-01", 200)
    site.restart_daemon(max_concurrent_runs=1)
    one = drain(site, first)
    site.restart_daemon()  # deploy/dagster.yaml: 4
    size_before = site.sql("SELECT pg_database_size('faults')")[0][0]
    four = drain(site, second)
    growth_kb = (site.sql("SELECT pg_database_size('faults')")[0][0] - size_before) / 1024 / len(second)
    for name, drained in (("limit 1", one), ("limit 4", four)):
        print(
            f"{name}: {len(drained.runs)} runs in {drained.wall_s:.0f} s, {drained.per_minute:.1f} runs/min, "
            f"at most {drained.most_at_once} at once (sampled), {drained.most_overlapping} overlapping"
        )
    print(f"database growth: {growth_kb:.0f} kB per run")

    assert one.runs == {day: ["SUCCESS"] for day in first}  # none lost or duplicated
    assert four.runs == {day: ["SUCCESS"] for day in second}
    assert one.most_at_once == one.most_overlapping == 1
    assert four.most_at_once <= 4 and 1 < four.most_overlapping <= 4  # the slots are used, never more
    assert four.per_minute > one.per_minute
