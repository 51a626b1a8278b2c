"""The shipped monitoring configs: Prometheus and promtool accept them, Prometheus loads the alert,
and the Grafana dashboard queries the metrics `orchestration.monitoring.metrics` exports, in valid PromQL."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from orchestration.monitoring import metrics
from tests.support.prometheus import MONITORING, api, binary

DASHBOARD = MONITORING / "grafana" / "hamilton_dashboard.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, check=False)


@pytest.mark.services  # promtool
def test_promtool_accepts_the_shipped_config_and_rules():
    for args in [
        ("check", "config", str(MONITORING / "prometheus.yml")),
        ("check", "rules", str(MONITORING / "alert_rules.yml")),
    ]:
        checked = promtool(*args)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.services  # Prometheus
def test_prometheus_loads_the_error_alert_and_scrapes_the_pushgateway(prometheus):
    groups = api(prometheus, "rules", type="alert")["data"]["groups"]
    rules = {rule["name"]: rule["query"] for group in groups for rule in group["rules"]}
    assert rules["HamiltonStepErrors"] == f"rate({metrics.STEP_ERRORS}[5m]) > 0"
    (target,) = api(prometheus, "targets")["data"]["activeTargets"]
    assert target["scrapePool"] == "pushgateway"
    assert "honor_labels: true" in api(prometheus, "status/config")["data"]["yaml"]


@pytest.mark.services  # Prometheus
def test_the_dashboard_has_a_panel_per_metric_with_valid_queries(prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert [panel["title"] for panel in panels] == [
        "Pipeline progress",
        "Asset duration, runs of the last day",
        "Records processed",
        "Error rate",
        "Running nodes",
    ]
    used = set()
    for panel in panels:
        for target in panel["targets"]:
            names = set(re.findall(r"\bhamilton_\w+", target["expr"]))
            exported = {
                m
                for m in metrics.METRICS
                if any(re.fullmatch(f"{m}(_bucket|_sum|_count)?", n) for n in names)
            }
            assert names and len(exported) == 1, f"{panel['title']}: {target['expr']}"
            used |= exported
            promql = target["expr"].replace("$pipeline", ".*")  # as Grafana does for "All"
            answer = api(prometheus, "query", query=promql)
            assert answer["status"] == "success", f"{panel['title']}: {answer}"
    assert used == set(metrics.METRICS)


def test_grafana_provisioning_points_at_the_dashboard_and_its_datasource():
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    uids |= {t["datasource"]["uid"] for panel in dashboard["panels"] for t in panel["targets"]}
    assert uids == {datasource["uid"]} and datasource["type"] == "prometheus"
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "hamilton.yml").read_text())["providers"]
    folder = provider["options"]["path"].replace("${HAMILTON_MONITORING_DIR}", str(MONITORING))
    assert DASHBOARD.parent.samefile(folder)
