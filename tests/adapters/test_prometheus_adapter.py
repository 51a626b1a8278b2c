"""`PrometheusAdapter` on a plain Hamilton driver pushes the Dagster path's series to a real
Pushgateway, with the same labels; a gateway that is down costs one warning, never the driver."""

import logging
import threading
import urllib.request
import uuid

import pandas as pd
import pytest
from hamilton import driver
from prometheus_client.parser import text_string_to_metric_families

from orchestration import PrometheusAdapter
from orchestration.monitoring import metrics
from tests.orchestration import counting_flow
from tests.support.ports import free_port
from tests.support.prometheus import pushgateway_fixture  # noqa: F401  (the fixture)

ASSETS = ["doubled", "source", "summary", "table", "total"]


def pushed(pushgateway, pipeline: str) -> dict[tuple[str, str], float]:
    """(sample name, asset or run id) -> value, for one pipeline, as the gateway holds them."""
    with urllib.request.urlopen(f"{pushgateway.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("pipeline") == pipeline and "le" not in sample.labels:
                samples[(sample.name, sample.labels.get("asset") or sample.labels["run_id"])] = sample.value
    return samples


@pytest.mark.services  # the Pushgateway
def test_executions_push_progress_durations_rows_and_errors_that_accumulate(pushgateway, monkeypatch):
    pipeline = f"plain_{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv("FAIL_NODE", raising=False)
    adapter = PrometheusAdapter(pushgateway.url, name=pipeline)
    dr = driver.Builder().with_modules(counting_flow).with_adapters(adapter).build()

    dr.execute(["summary"])
    first = pushed(pushgateway, pipeline)
    [run_id] = [key for name, key in first if name == metrics.PIPELINE_PROGRESS]
    assert first[(metrics.PIPELINE_PROGRESS, run_id)] == 100.0
    assert {a: first[(f"{metrics.STEP_DURATION}_count", a)] for a in ASSETS} == dict.fromkeys(ASSETS, 1.0)
    assert {a: first[(metrics.STEP_ERRORS, a)] for a in ASSETS} == dict.fromkeys(ASSETS, 0.0)
    rows = {a: first.get((metrics.RECORDS_PROCESSED, a)) for a in ASSETS}
    assert rows == {"source": 4.0, "table": 4.0, "total": 4.0, "doubled": 4.0, "summary": None}

    monkeypatch.setenv("FAIL_NODE", "total")
    with pytest.raises(RuntimeError, match="total cannot be computed today"):
        dr.execute(["summary"])
    second = pushed(pushgateway, pipeline)
    [latest] = [key for name, key in second if name == metrics.PIPELINE_PROGRESS]
    assert latest != run_id and second[(metrics.PIPELINE_PROGRESS, latest)] == 40.0  # 2 of 5 assets
    assert {a: second[(metrics.STEP_ERRORS, a)] for a in ASSETS} == {
        **dict.fromkeys(ASSETS, 0.0),
        "total": 1.0,
    }
    assert second[(f"{metrics.STEP_DURATION}_count", "source")] == 2.0  # counted across executions


def test_a_gateway_that_is_down_costs_one_warning_without_credentials(caplog):
    url = f"http://metrics:s3cret@127.0.0.1:{free_port()}"
    dr = driver.Builder().with_modules(counting_flow).with_adapters(PrometheusAdapter(url)).build()
    with caplog.at_level(logging.WARNING, logger="orchestration.adapters.prometheus"):
        assert dr.execute(["summary"])["summary"]["sum"] == 2 * sum(range(8))
    [warning] = [r.getMessage() for r in caplog.records if "Pushgateway" in r.getMessage()]
    assert "pipeline 'counting_flow'" in warning and "the execution pushes no more metrics" in warning
    assert "s3cret" not in warning and "metrics:" not in warning


def test_without_a_gateway_no_pusher_starts(monkeypatch):
    monkeypatch.delenv(metrics.PUSHGATEWAY_URL, raising=False)
    started = []

    class Watched(PrometheusAdapter):
        def run_after_node_execution(self, **kwargs):
            started.extend(t.name for t in threading.enumerate() if t.name.startswith("metrics-"))
            super().run_after_node_execution(**kwargs)

    driver.Builder().with_modules(counting_flow).with_adapters(Watched()).build().execute(["summary"])
    assert started == []


def test_a_failing_column_of_an_overridden_asset_fails_the_driver_with_its_own_error():
    """The column node's asset was given, not computed: nothing to count, and never our error."""
    url = f"http://127.0.0.1:{free_port()}"
    dr = driver.Builder().with_modules(counting_flow).with_adapters(PrometheusAdapter(url)).build()
    without_y = pd.DataFrame({"x": [1, 2]})
    with pytest.raises(Exception, match="No such column: y"):
        dr.execute(["total"], overrides={"table": without_y})
