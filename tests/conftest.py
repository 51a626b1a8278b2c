"""Shared fixtures: a private data directory and Dagster instance per test, and dataflow modules
written to real files (Hamilton hashes function source, so modules need a file)."""

import importlib.util
import os
import sys
import textwrap
import uuid
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")


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
