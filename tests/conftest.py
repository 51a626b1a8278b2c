"""Shared fixtures: a private data directory and Dagster instance per test, and dataflow modules
written to real files (Hamilton hashes function source, so modules need a file). And the rule
that keeps `pytest -m "not services"` fast and free of services: only tests marked `services`
may start a process."""

import importlib.util
import multiprocessing.process
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")

# Tests assert behaviour, not disk speed: on a slow disk, the fsyncs of every run (SQLite, the
# store's syncfs) can double a test's time. Temporary directories (tmp_path, Dagster homes, data
# directories) therefore live on tmpfs where there is a roomy one (a container's default /dev/shm
# is 64 MB); PYTEST_TMP_ON_DISK=1 keeps them on disk.
TMPFS_NEEDED_BYTES = 2 * 1024**3


def _roomy_tmpfs() -> str | None:
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= TMPFS_NEEDED_BYTES and os.access("/dev/shm", os.W_OK)
    return "/dev/shm" if roomy else None


if os.environ.get("PYTEST_TMP_ON_DISK") != "1" and (tmpfs := _roomy_tmpfs()):
    tempfile.tempdir = tmpfs

_REFUSED_PROCESSES = pytest.StashKey[list[str]]()
# Dagster's compute-log capture: a step on an on-disk instance (the `instance` fixture, as `dagster
# dev` runs it) mirrors its captured stdout and stderr back with `tail -F`, each watched by a small
# Python script. Helpers of any in-process run, not services, so they are allowed everywhere.
_DAGSTER_LOG_MIRROR = "dagster._core.execution.compute_logs"


def _module_asking_for_the_process() -> str:
    """The module whose code called into `subprocess` (`run`, `Popen`, ...) for this process."""
    frame = sys._getframe(1)
    while frame.f_code.co_filename != subprocess.__file__:
        frame = frame.f_back
    while frame.f_code.co_filename == subprocess.__file__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Starting a process (`subprocess`, `multiprocessing`) fails a test not marked `services`.

    A hook, not an autouse fixture: fixtures of a wider scope (a session's Pushgateway, a module's
    `dagster dev`) are set up before any function-scoped fixture, so a guard fixture would not see
    them start. Here setup, call and teardown of the test are all covered.
    """
    if item.get_closest_marker("services"):
        return (yield)
    refused = item.stash[_REFUSED_PROCESSES] = []
    execute_child = subprocess.Popen._execute_child  # Popen's start, inside its __init__

    def refuse(what: str) -> None:
        refused.append(
            f"{item.nodeid} started {what}, but is not marked `services`. Mark the test "
            "@pytest.mark.services (or its module: pytestmark = pytest.mark.services), so that "
            '`pytest -m "not services"` stays fast and needs no service.'
        )
        pytest.fail(refused[-1])

    def start_only_dagsters_log_mirror(popen, args, *rest):
        if _module_asking_for_the_process() == _DAGSTER_LOG_MIRROR:
            return execute_child(popen, args, *rest)
        refuse(f"the process {args!r}")  # Popen cleans up after it as after any failed start

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", start_only_dagsters_log_mirror)
        patch.setattr(
            multiprocessing.process.BaseProcess, "start", lambda self: refuse(f"the process {self!r}")
        )
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A refused process fails the test even where its error was swallowed: raised in another
    thread, caught by the code under test, or expected by `xfail`."""
    report = yield
    refused = item.stash.get(_REFUSED_PROCESSES, [])
    if refused and not report.failed:
        report.outcome = "failed"
        report.longrepr = "\n".join(refused)
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    refused.clear()
    return report


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(path))
    monkeypatch.delenv("LANDING_DIR", raising=False)
    return path


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance on disk (SQLite), as `dagster dev` uses, not an in-memory one."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def make_module(tmp_path):
    """Writes Python source to a file and imports it as a fresh module."""
    folder = tmp_path / "modules"
    folder.mkdir()
    created = []

    def make(source: str, name: str | None = None):
        name = name or f"flow_{uuid.uuid4().hex[:8]}"
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        created.append(name)
        return module

    yield make
    for name in created:
        sys.modules.pop(name, None)


def step_failure(result) -> str:
    """The text of a run's first step failure (message plus causes), as the UI shows it."""
    event = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = event.event_specific_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def run_event(instance, run_id: str, event_type):
    """The first event of `event_type` in a run, as sensors receive it."""
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return records[0].event_log_entry.dagster_event
