"""The production profile (deploy/dagster.yaml, scripts/prod) on a real PostgreSQL server.

The shipped dataflows materialize through the CLI with a plain `postgresql://` URL, two at once;
scripts/prod's daemon stores its sensor and schedule ticks and runs their requests at once; the
history is in PostgreSQL's tables, read with plain SQL; and the URL's password is written nowhere.
Faults on this profile are in test_infrastructure_faults.py.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import (
    InstigatorType,
    ScheduleInstigatorData,
    TickData,
    TickStatus,
)
from dagster._serdes import deserialize_value, serialize_value

from hamilton_pipelines.sample_data import write_sample_sales
from orchestration.ops.postgres_storage import PostgresStorage, psycopg2_url
from tests.support.dagster_dev import graphql
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer, binary, postgres_fixture  # noqa: F401  (the `postgres` fixture)
from tests.support.processes import command_line, group_members

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
PASSWORD = "never-logged-5f1c"
DAY = "2026-01-02"
WAIT_S = 180


@dataclass
class Profile:
    """A data directory and DAGSTER_HOME set up as scripts/prod does, on database `dagster`."""

    postgres: PostgresServer
    data: Path
    home: Path
    env: dict[str, str]

    def sql(self, statement: str, *args) -> list[tuple]:
        return self.postgres.query("dagster", statement, *args)

    @contextlib.contextmanager
    def instance(self):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DAGSTER_PG_URL", self.env["DAGSTER_PG_URL"])
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                yield instance

    def runs(self) -> dict[str, tuple]:
        """run id -> (status, start, end, tags), from the `runs` and `run_tags` tables."""
        rows = self.sql("SELECT run_id, status, start_time, end_time FROM runs")
        tags = self.sql("SELECT run_id, key, value FROM run_tags")
        return {
            run_id: (status, start, end, {k: v for r, k, v in tags if r == run_id})
            for run_id, status, start, end in rows
        }


@pytest.fixture(scope="module")
def profile(postgres, tmp_path_factory) -> Profile:
    data = tmp_path_factory.mktemp("data")
    write_sample_sales(data / "landing", days=1, start=DAY)  # one file: one sensor run
    home = data / "dagster_home_prod"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(ROOT / "deploy" / "dagster.yaml")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LANDING_DIR", "PIPELINE_STORE_URL", "DAGSTER_HOST", "DAGSTER_PORT")
    }
    env |= {
        "DAGSTER_HOME": str(home),
        "PIPELINE_DATA_DIR": str(data),
        "PIPELINE_TIMEZONE": "UTC",
        "DAGSTER_PG_URL": postgres.create_database("dagster"),
    }
    return Profile(postgres, data, home, env)


def overlap(*runs: tuple) -> bool:
    """Whether the runs (as `Profile.runs` gives them) were all running at one moment."""
    return max(run[1] for run in runs) < min(run[2] for run in runs)


@pytest.mark.services  # PostgreSQL
def test_the_profile_loads_with_queue_limit_and_run_monitoring(profile):
    with profile.instance() as instance:
        assert instance.get_ref().storage_data.class_name == PostgresStorage.__name__
        assert instance.event_log_storage.postgres_url.startswith("postgresql+psycopg2://")
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4  # the daemon's
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        # Run workers get the instance on their command line: it names the variable, not the URL.
        assert "DAGSTER_PG_URL" in serialize_value(instance.get_ref())
        assert "127.0.0.1" not in serialize_value(instance.get_ref())


@pytest.mark.services  # PostgreSQL, `dagster asset materialize`
def test_shipped_dataflows_materialize_at_once_through_the_cli(profile):
    selections = [
        ["--select", "group:ml_pipeline"],
        ["--select", "group:sales_analytics", "--partition", DAY],
    ]
    processes = [
        subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "orchestration.definitions", *selection],
            cwd=ROOT,
            env=profile.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for selection in selections
    ]
    for process in processes:
        output = process.communicate(timeout=WAIT_S)[0]
        assert process.returncode == 0, output[-4000:]

    runs = profile.runs()
    assert [run[0] for run in runs.values()] == ["SUCCESS", "SUCCESS"]
    assert overlap(*runs.values())
    stored = profile.sql(
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert ('["trained_model"]', None) in stored
    assert ('["sales_report"]', DAY) in stored
    assert {
        run_id
        for (run_id,) in profile.sql(
            "SELECT DISTINCT run_id FROM event_logs WHERE dagster_event_type = 'PIPELINE_SUCCESS'"
        )
    } == set(runs)


@dataclass
class Prod:
    url: str
    log: Path


@pytest.fixture(scope="module")
def prod(profile):
    """scripts/prod (webserver + daemon) with a password in the URL, after `ml_training_schedule`
    was turned on an hour before its last tick time (Monday 07:00 UTC), so one tick is due at once."""
    started = subprocess.run(
        [DAGSTER, "schedule", "start", "ml_training_schedule", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    with profile.instance() as instance:
        [state] = [
            s
            for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
            if s.name == "ml_training_schedule"
        ]
        instance.update_instigator_state(
            state.with_data(
                ScheduleInstigatorData(
                    state.instigator_data.cron_schedule, start_timestamp=_last_monday_7am() - 3600
                )
            )
        )

    port = free_port()
    url_with_password = profile.env["DAGSTER_PG_URL"].replace("postgres@", f"postgres:{PASSWORD}@")
    env = {**profile.env, "DAGSTER_PG_URL": url_with_password, "DAGSTER_PORT": str(port)}
    log = profile.data / "prod.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "prod")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Prod(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            with contextlib.suppress(OSError):
                entries = graphql(
                    server.url,
                    "{ workspaceOrError { ... on Workspace { locationEntries {"
                    " locationOrLoadError { __typename } } } } }",
                )["workspaceOrError"]
                if entries["locationEntries"][0]["locationOrLoadError"]:
                    break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"scripts/prod did not serve in {WAIT_S} s"
            time.sleep(1)
        yield server
        process.send_signal(signal.SIGTERM)  # the script alone: it stops webserver and daemon
        assert process.wait(timeout=60) == 143
        deadline = time.monotonic() + 60
        while left := group_members(process.pid):
            assert time.monotonic() < deadline, f"scripts/prod left {[command_line(pid) for pid in left]}"
            time.sleep(0.5)
    finally:
        if group_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _last_monday_7am() -> float:
    now = datetime.datetime.now(datetime.UTC)
    monday = now.replace(hour=7, minute=0, second=0, microsecond=0) - datetime.timedelta(days=now.weekday())
    return (monday if monday <= now else monday - datetime.timedelta(days=7)).timestamp()


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S} s"
        time.sleep(1)
    return result


def ticks(profile: Profile, name: str) -> list[TickData]:
    """The instigator's ticks, read from the `job_ticks` table."""
    bodies = profile.sql("SELECT tick_body FROM job_ticks")
    decoded = [deserialize_value(body, TickData) for (body,) in bodies]
    return [tick for tick in decoded if tick.instigator_name == name]


@pytest.mark.services  # PostgreSQL, scripts/prod
def test_the_daemon_stores_ticks_and_runs_their_requests_at_once(profile, prod):
    def requested() -> dict | None:
        runs = {
            run_id: run
            for run_id, run in profile.runs().items()
            if {"dagster/sensor_name", "dagster/schedule_name"} & run[3].keys()
        }
        finished = len(runs) == 2 and all(run[0] in ("SUCCESS", "FAILURE") for run in runs.values())
        return runs if finished else None

    runs = wait_for(requested, "finished sensor and schedule runs")
    assert sorted(run[0] for run in runs.values()) == ["SUCCESS", "SUCCESS"], prod.log.read_text()[-4000:]
    assert overlap(*runs.values())
    by_instigator = {
        run[3].get("dagster/sensor_name") or run[3]["dagster/schedule_name"]: run_id
        for run_id, run in runs.items()
    }
    assert runs[by_instigator["landing_files"]][3]["dagster/partition"] == DAY

    [schedule_tick] = ticks(profile, "ml_training_schedule")
    assert schedule_tick.status == TickStatus.SUCCESS
    assert schedule_tick.run_ids == [by_instigator["ml_training_schedule"]]
    sensor_ticks = ticks(profile, "landing_files")
    assert [t.run_ids for t in sensor_ticks if t.run_ids] == [[by_instigator["landing_files"]]]
    assert profile.sql("SELECT count(*) FROM instigators WHERE status = 'RUNNING'")[0][0] >= 1
    for run_id in runs:
        events = {
            kind
            for (kind,) in profile.sql(
                "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s", run_id
            )
        }
        assert {
            "PIPELINE_ENQUEUED",
            "PIPELINE_STARTING",
            "ASSET_MATERIALIZATION",
            "PIPELINE_SUCCESS",
        } <= events


@pytest.mark.services  # PostgreSQL, scripts/prod, pg_dump
def test_the_password_is_written_nowhere(profile, prod):
    dump = subprocess.run(
        [binary("pg_dump"), profile.env["DAGSTER_PG_URL"]], capture_output=True, text=True, check=True
    ).stdout
    assert "PIPELINE_SUCCESS" in dump and PASSWORD not in dump
    for path in profile.data.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.services  # scripts/prod
def test_prod_refuses_without_a_database_or_with_the_dev_instance(tmp_path):
    def run_prod(env: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ROOT / "scripts" / "prod")], env=env, capture_output=True, text=True, check=False
        )

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_PG_URL"}
    refused = run_prod(env)
    assert refused.returncode == 2 and "DAGSTER_PG_URL is not set" in refused.stderr

    dev_home = tmp_path / "dagster_home"
    dev_home.mkdir()
    (dev_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env |= {"DAGSTER_PG_URL": "postgresql://127.0.0.1/dagster", "DAGSTER_HOME": str(dev_home)}
    refused = run_prod(env)
    assert refused.returncode == 2 and "is not deploy/dagster.yaml" in refused.stderr


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:p@db:5432/dagster", "postgresql+psycopg2://u:p@db:5432/dagster"),
        ("postgres://u@db/dagster?sslmode=require", "postgresql+psycopg2://u@db/dagster?sslmode=require"),
        ("postgresql+psycopg2://u@db/dagster", "postgresql+psycopg2://u@db/dagster"),
    ],
)
def test_plain_urls_use_psycopg2(url, expected):
    assert psycopg2_url(url) == expected


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://u:s3cret@db/d", "mysql://u:s3cret@db/d", "u:s3cret@db"]
)
def test_other_urls_are_refused_without_showing_them(url):
    with pytest.raises(ValueError, match="DAGSTER_PG_URL must be a PostgreSQL URL") as error:
        psycopg2_url(url)
    assert "s3cret" not in str(error.value)
