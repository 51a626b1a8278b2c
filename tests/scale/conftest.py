"""A real Celery cluster on loopback: redis-server as the broker and two `dagster-celery` workers,
each its own process group, all stopped at teardown."""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import redis
import yaml
from celery import Celery

from tests.support import BIN, ROOT
from tests.support.ports import free_port
from tests.support.processes import group_members, stop_group

WORKERS = ("worker_one", "worker_two")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class CeleryCluster:
    executor_config: dict  # the celery_executor's config, as in `execution: config:`
    dagster_home: Path
    workers: tuple[str, ...]  # Celery node names, e.g. worker_one@host


def _start(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def _stop(process: subprocess.Popen) -> None:
    """Ends the whole process group (`dagster-celery worker start` runs `celery`, which forks its
    pool), and checks nothing of it survived."""
    stop_group(process, timeout_s=STOP_TIMEOUT_S)
    assert not group_members(process.pid), f"processes of group {process.pid} survived SIGKILL"


def _logs(folder: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in sorted(folder.glob("*.log"))
    )


@pytest.fixture
def celery_cluster(tmp_path, data_dir):
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is not installed; the Celery tests need a real broker. Install it with scripts/install-system."
        )
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "redis").mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    with dg.DagsterInstance.from_config(str(home)):
        pass  # creates the instance's databases once, before two workers race to
    port = free_port()
    config = {
        "broker": f"redis://127.0.0.1:{port}/0",
        "backend": f"redis://127.0.0.1:{port}/1",
        # a worker takes its next step only when it has finished the last, so idle workers get work
        "config_source": {"task_acks_late": True},
    }
    config_yaml = tmp_path / "celery.yaml"
    config_yaml.write_text(yaml.safe_dump({"execution": {"config": config}}))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the CLI runs `celery` from PATH
        "DAGSTER_HOME": str(home),
        "PIPELINE_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
    }

    processes = []
    try:
        processes.append(
            _start(
                [
                    server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(tmp_path / "redis"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                logs / "redis.log",
            )
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(port=port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, f"redis-server did not start:\n{_logs(logs)}"
                time.sleep(0.1)
        for name in WORKERS:
            processes.append(
                _start(
                    [
                        str(BIN / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(config_yaml),
                        "--name",
                        name,
                        "--",
                        "--concurrency=1",
                    ],
                    logs / f"{name}.log",
                    cwd=ROOT,
                    env=env,
                )
            )
        app = Celery(broker=config["broker"], backend=config["backend"])
        ready: set[str] = set()
        while len(ready) < len(WORKERS):
            ready |= {node for reply in app.control.ping(timeout=0.5) for node in reply}
            exited = [p.args for p in processes if p.poll() is not None]
            assert not exited and time.monotonic() < deadline, (
                f"Celery workers did not start (ready: {ready}, exited: {exited}):\n{_logs(logs)}"
            )
        yield CeleryCluster(config, home, tuple(sorted(ready)))
    finally:
        for process in reversed(processes):
            _stop(process)
