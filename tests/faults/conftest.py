"""Shared helpers of the fault-injection tests: `dagster dev` on a private instance for any
definitions module, and a look at processes through /proc."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster_dev import DagsterDev, free_port

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    # Runs by default (plain `pytest`, as CI does); `-m "not slow"` leaves these out locally.
    config.addinivalue_line("markers", "slow: a fault test that takes half a minute or more (runs by default)")
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 180


@contextlib.contextmanager
def dagster_dev(module: str, home: Path, env: dict[str, str]) -> Iterator[tuple[DagsterDev, subprocess.Popen]]:
    """`dagster dev` (webserver, daemon, code server) serving `module` as the location
    `hamilton_pipelines`, on the SQLite instance in `home`; stopped, with everything it started,
    at the end."""
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        f"      module_name: {module}\n      working_directory: {ROOT}\n"
        "      location_name: hamilton_pipelines\n"
    )
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    log_path = home / "dagster_dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    client = DagsterDev(f"http://127.0.0.1:{port}", home, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                entries = client.graphql(
                    "{ workspaceOrError { ... on Workspace { locationEntries { "
                    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
                )["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries
                    break
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"dagster dev did not come up in {START_TIMEOUT_S} s"
            time.sleep(0.5)
        yield client, process
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait_s
        while group_members(process.pid) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.1)
    process.poll()


def _stats() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            yield int(stat.parent.name), state, int(parent), int(group)


def group_members(group: int) -> list[int]:
    """Processes of the group that still run (zombies do not count)."""
    return [pid for pid, state, _, pgid in _stats() if pgid == group and state != "Z"]


def descendants(pid: int) -> list[int]:
    """Running children, grandchildren, ... of `pid`."""
    children: dict[int, list[int]] = {}
    for child, state, parent, _ in _stats():
        if state != "Z":
            children.setdefault(parent, []).append(child)
    found, stack = [], list(children.get(pid, []))
    while stack:
        found.append(child := stack.pop())
        stack += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return str(pid)


@pytest.fixture(scope="session")
def figures():
    """Measured figures for docs/reliability.md, printed at the end of the session."""
    collected: dict = {}
    yield collected
    if collected:
        print("\nFAULT FIGURES " + json.dumps(collected, indent=1, default=str))
