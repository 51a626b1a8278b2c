"""`dagster dev` for real, shared by the tests that need it: webserver and daemon on a free
loopback port with a private DAGSTER_HOME and PIPELINE_DATA_DIR, and a small GraphQL client.

A test module imports `dagster_dev_fixture` to get the `dagster_dev` fixture: it is
module-scoped, so each such module starts one `dagster dev` and its tests share it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCATION = "hamilton_pipelines"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    """The running `dagster dev`: its URL, landing folder, log file and GraphQL API."""

    def __init__(self, url: str, landing: Path, log: Path):
        self.url = url
        self.landing = landing
        self.log = log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def launch_run(self, asset_paths: list[list[str]], job: str = "__ASSET_JOB") -> str:
        """Launches a run of these assets as the UI's Materialize button does; returns its id."""
        launched = self.graphql(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {"params": {
                "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                             "jobName": job,
                             "assetSelection": [{"path": path} for path in asset_paths]},
                "runConfigData": {},
            }},
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

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


@pytest.fixture(scope="module", name="dagster_dev")
def dagster_dev_fixture(tmp_path_factory):
    """`dagster dev` with an empty landing folder (so no sample data is generated: tests land
    their own files) and the landing sensor ticking every second."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    data = tmp_path_factory.mktemp("data")
    landing = data / "landing"
    landing.mkdir()
    port = free_port()
    log_path = home / "dagster_dev.log"
    log = log_path.open("w")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PIPELINE_DATA_DIR": str(data),
           "LANDING_SENSOR_INTERVAL_S": "1"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    client = DagsterDev(f"http://127.0.0.1:{port}", landing, log_path)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                status = client.graphql(
                    "{ workspaceOrError { ... on Workspace { locationEntries { name "
                    "locationOrLoadError { __typename } } } } }"
                )
                entries = status["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                    break
            except OSError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "dagster dev did not come up in 180 s"
            time.sleep(1)
        yield client
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
