"""Real Prometheus and Pushgateway processes (Debian's), on free loopback ports, for the session,
and a small client of Prometheus' HTTP API.

A test module (or conftest) imports `pushgateway_fixture` (and `prometheus_fixture`) to get the
`pushgateway` (and `prometheus`) fixture. Prometheus runs the shipped `monitoring/prometheus.yml`,
changed only where a test must: it scrapes the test Pushgateway every second and loads the shipped
rule file by absolute path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT
from tests.support.ports import free_port

MONITORING = ROOT / "monitoring"
READY_TIMEOUT_S = 20.0
POLL_TIMEOUT_S = 15.0


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        pytest.fail(
            f"'{name}' is not installed; the monitoring tests run the real service. "
            "Run scripts/install-system (it installs Debian's prometheus and prometheus-pushgateway).",
            pytrace=False,
        )
    return path


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path


def _start(command: list[str], url: str, log: Path) -> Service:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    service = Service(url, process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[0]} exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return service
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    _stop(service)
    pytest.fail(f"{command[0]} not ready within {READY_TIMEOUT_S:g} s:\n{log.read_text()}", pytrace=False)


def _stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="session", name="pushgateway")
def pushgateway_fixture(tmp_path_factory) -> Service:
    folder = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    command = [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"]
    service = _start(command, f"http://127.0.0.1:{port}", folder / "pushgateway.log")
    yield service
    _stop(service)


@pytest.fixture(scope="session", name="prometheus")
def prometheus_fixture(pushgateway, tmp_path_factory) -> Service:
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [urllib.parse.urlsplit(pushgateway.url).netloc]}]
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    service = _start(command, f"http://127.0.0.1:{port}", folder / "prometheus.log")
    yield service
    _stop(service)


def api(prometheus: Service, path: str, **params) -> dict:
    """A Prometheus HTTP API answer (errors such as a bad query come back as JSON too)."""
    url = f"{prometheus.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def query(prometheus: Service, expr: str, by: str) -> dict[str, float]:
    """An instant query's values, keyed by the label `by`."""
    answer = api(prometheus, "query", query=expr)
    assert answer["status"] == "success", answer
    return {item["metric"].get(by, ""): float(item["value"][1]) for item in answer["data"]["result"]}


def wait_for(fetch: Callable[[], object], expected: object, timeout_s: float = POLL_TIMEOUT_S) -> None:
    """Polls until `fetch()` returns `expected`; then asserts, showing the last value."""
    deadline = time.monotonic() + timeout_s
    while (value := fetch()) != expected and time.monotonic() < deadline:
        time.sleep(0.25)
    assert value == expected
