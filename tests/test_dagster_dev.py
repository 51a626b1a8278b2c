"""`dagster dev` for real: webserver and daemon on a free loopback port, driven over GraphQL."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    def __init__(self, url: str, landing: Path):
        self.url = url
        self.landing = landing

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


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    data = tmp_path_factory.mktemp("data")
    landing = data / "landing"
    landing.mkdir()  # exists, so no sample data is generated: the test lands its own files
    port = free_port()
    log = (home / "dagster_dev.log").open("w")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PIPELINE_DATA_DIR": str(data),
           "LANDING_SENSOR_INTERVAL_S": "1"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    client = DagsterDev(f"http://127.0.0.1:{port}", landing)
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
            assert process.poll() is None, (home / "dagster_dev.log").read_text()
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


def test_the_ui_shows_every_asset_with_description_group_code_version_and_kinds(dagster_dev):
    nodes = dagster_dev.graphql(
        "{ assetNodes { assetKey { path } description groupName opVersion kinds } }"
    )["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {"sales_report", "clean_sales", "trained_model", "evaluation_metrics"} <= set(by_key)
    report = by_key["sales_report"]
    assert report["groupName"] == "sales_analytics"
    assert report["description"].startswith("Markdown report")
    assert len(report["opVersion"]) == 64
    assert "hamilton" in report["kinds"]


def test_a_run_launched_from_the_ui_materializes_with_progress_lines(dagster_dev):
    launched = dagster_dev.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"params": {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                         "jobName": "__ASSET_JOB",
                         "assetSelection": [{"path": ["raw_dataset"]}, {"path": ["target"]}]},
            "runConfigData": {},
        }},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    while True:
        status = dagster_dev.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"run still {status} after 180 s"
        time.sleep(1)
    events = dagster_dev.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
             events { __typename ... on MessageEvent { message } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    messages = [e.get("message", "") for e in events]
    assert status == "SUCCESS", messages
    progress = [m for m in messages if m.startswith("[")]
    assert [m.split(" done in ")[0] for m in progress] == ["[1/2 50%] raw_dataset", "[2/2 100%] target"]


def runs_for_file(dagster_dev, name: str) -> list[dict]:
    return dagster_dev.graphql(
        """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
             ... on Runs { results { runId status tags { key value } } } } }""",
        {"tags": [{"key": "landing/file", "value": name}]},
    )["runsOrError"]["results"]


def test_a_landed_file_is_run_once_by_the_sensor(dagster_dev):
    from hamilton_pipelines.sample_data import write_sample_sales

    [path] = write_sample_sales(dagster_dev.landing, days=1, rows_per_day=50, start="2026-01-05")
    deadline = time.monotonic() + 240
    while True:
        runs = runs_for_file(dagster_dev, path.name)
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"no finished sensor run for {path.name}: {runs}"
        time.sleep(1)
    assert [r["status"] for r in runs] == ["SUCCESS"]
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["dagster/partition"] == "2026-01-05"

    write_sample_sales(dagster_dev.landing, days=1, rows_per_day=50, start="2026-01-05")  # same bytes
    time.sleep(8)  # several sensor ticks
    assert len(runs_for_file(dagster_dev, path.name)) == 1


def test_a_backfill_from_the_ui_runs_one_run_per_day(dagster_dev):
    from hamilton_pipelines.sample_data import write_sample_sales

    write_sample_sales(dagster_dev.landing, days=2, rows_per_day=50, start="2026-01-02")
    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    sales = [{"path": n["assetKey"]["path"]} for n in nodes if n["groupName"] == "sales_analytics"]
    launched = dagster_dev.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"params": {"assetSelection": sales, "partitionNames": ["2026-01-02", "2026-01-03"]}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    tag = [{"key": "dagster/backfill", "value": launched["backfillId"]}]
    deadline = time.monotonic() + 300
    while True:
        runs = dagster_dev.graphql(
            """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results { status tags { key value } } } } }""",
            {"tags": tag},
        )["runsOrError"]["results"]
        if len(runs) == 2 and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            break
        assert time.monotonic() < deadline, f"backfill runs not finished: {runs}"
        time.sleep(1)
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"]
    days = sorted({t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition"})
    assert days == ["2026-01-02", "2026-01-03"]
    stored = dagster_dev.landing.parent / "assets" / "sales_report"
    assert {"partition=2026-01-02.txt", "partition=2026-01-03.txt"} <= {p.name for p in stored.iterdir()}
