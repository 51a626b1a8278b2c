"""`dagster dev` for real: webserver, daemon and code server on a free loopback port with a
private DAGSTER_HOME, stopped with everything it started; and a small GraphQL client for it.

`dagster_dev(workspace, home, env)` serves any workspace (`workspace_for(module, home)` writes one
for a definitions module). A test module imports `dagster_dev_fixture` to get the `dagster_dev`
fixture, the shipped workspace.yaml as `scripts/dev` serves it: it is module-scoped, so each such
module starts one `dagster dev` and its tests share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BIN, ROOT
from tests.support.ports import free_port
from tests.support.processes import stop_group

LOCATION = "hamilton_pipelines"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
START_TIMEOUT_S = 180


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """One GraphQL request to the webserver at `url`; its errors fail the test."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def launch_run(
    url: str, job: str, location: str = LOCATION, asset_paths: list[list[str]] | None = None
) -> str:
    """Launches a run of `job` (of these assets only, if given) as the UI does; returns its id."""
    selector: dict = {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job}
    if asset_paths is not None:
        selector["assetSelection"] = [{"path": path} for path in asset_paths]
    launched = graphql(
        url,
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"params": {"selector": selector, "runConfigData": {}}},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


class DagsterDev:
    """The running `dagster dev`: its URL, landing folder, log file and GraphQL API."""

    def __init__(self, url: str, landing: Path, log: Path):
        self.url = url
        self.landing = landing
        self.log = log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)

    def launch_run(self, asset_paths: list[list[str]], job: str = "__ASSET_JOB") -> str:
        """Launches a run of these assets as the UI's Materialize button does; returns its id."""
        return launch_run(self.url, job, asset_paths=asset_paths)

    def wait_for_run(self, run_id: str, timeout_s: float = 180) -> str:
        """Polls until the run has finished; returns its final status."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.graphql(
                "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
            )["runOrError"]["status"]
            if status in FINISHED:
                return status
            assert time.monotonic() < deadline, f"run {run_id} still {status} after {timeout_s:.0f} s"
            time.sleep(1)

    def run_messages(self, run_id: str) -> list[str]:
        """The messages of the run's log events, in order."""
        events = self.graphql(
            """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
                 events { __typename ... on MessageEvent { message } } } } }""",
            {"id": run_id},
        )["logsForRun"]["events"]
        return [e.get("message", "") for e in events]

    def materialization_progress(self, run_id: str) -> list[str]:
        """The `progress` metadata of the run's materializations, in order (as the UI shows it)."""
        events = self.graphql(
            """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
                 events { __typename ... on MaterializationEvent {
                   metadataEntries { label ... on TextMetadataEntry { text } } } } } } }""",
            {"id": run_id},
        )["logsForRun"]["events"]
        return [
            entry["text"]
            for event in events
            for entry in event.get("metadataEntries", [])
            if entry["label"] == "progress"
        ]

    def runs_with_tag(self, key: str, value: str) -> list[dict]:
        """Runs carrying this tag, newest first: id, status and tags."""
        return self.graphql(
            """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results { runId status tags { key value } } } } }""",
            {"tags": [{"key": key, "value": value}]},
        )["runsOrError"]["results"]


def workspace_for(module: str, home: Path) -> Path:
    """A workspace file in `home` that loads `module` as the location `hamilton_pipelines`."""
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        f"      module_name: {module}\n      working_directory: {ROOT}\n"
        f"      location_name: {LOCATION}\n"
    )
    return workspace


@contextlib.contextmanager
def dagster_dev(
    workspace: Path | None, home: Path, env: dict[str, str], command: list[str] | None = None
) -> Iterator[tuple[DagsterDev, subprocess.Popen]]:
    """`dagster dev` serving `workspace` (or `command`, such as `dg dev` in the project) on the
    SQLite instance in `home`, with `env` on top of this process's environment
    (`PIPELINE_DATA_DIR` is required: the client's `landing` is in it); yields once the location
    has loaded."""
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    log_path = home / "dagster_dev.log"
    with log_path.open("w") as log:  # the child keeps its own handle
        process = subprocess.Popen(
            [
                *(command or [str(BIN / "dagster"), "dev", "-w", str(workspace)]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = DagsterDev(f"http://127.0.0.1:{port}", Path(env["PIPELINE_DATA_DIR"]) / "landing", log_path)
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


@pytest.fixture(scope="module", name="dagster_dev")
def dagster_dev_fixture(tmp_path_factory):
    """`dagster dev` with an empty landing folder (so no sample data is generated: tests land
    their own files) and the landing sensor ticking every second."""
    home = tmp_path_factory.mktemp("dagster_home")
    data = tmp_path_factory.mktemp("data")
    (data / "landing").mkdir()
    env = {"PIPELINE_DATA_DIR": str(data), "LANDING_SENSOR_INTERVAL_S": "1"}
    with dagster_dev(ROOT / "workspace.yaml", home, env) as (client, _):
        yield client
