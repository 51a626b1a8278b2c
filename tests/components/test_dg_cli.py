"""The real `dg` CLI, in subprocesses, on the shipped project and on a new project that adds a
Hamilton dataflow with one defs.yaml: check, list, launch, scaffold, dev, and bad YAML."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import ValueStore
from tests.support import BIN, ROOT
from tests.support.dagster_dev import dagster_dev

pytestmark = pytest.mark.services

ORDERS = '''
import pandas as pd


def orders(region: str = "emea") -> pd.DataFrame:
    """Orders of one region."""
    return pd.DataFrame({"region": [region] * 3, "amount": [1.0, 2.0, 3.0]})


def total(orders: pd.DataFrame) -> float:
    """Sum of the amounts."""
    return float(orders["amount"].sum())
'''


def dg_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 300):
    """`dg <args>` in `cwd` with this virtualenv active; returns the finished process."""
    environment = {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "dg"), *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "dagster_home"
    path.mkdir()
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A new Dagster project (`[tool.dg]`, a defs folder) with a Hamilton module and no defs yet."""
    root = tmp_path / "shop"
    (root / "shop" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0.1.0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "shop"\n'
    )
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "defs" / "__init__.py").write_text("")
    (root / "shop" / "orders.py").write_text(ORDERS)
    (root / "shop" / "broken.py").write_text('raise RuntimeError("the warehouse moved")\n')
    (root / "shop" / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n"
        "defs = dg.load_from_defs_folder(path_within_project=Path(__file__))\n"
    )
    return root


def test_dg_checks_and_lists_the_shipped_project():
    assert "All definitions loaded successfully." in succeeded(dg_cli("check", "defs", cwd=ROOT))
    listed = json.loads(succeeded(dg_cli("list", "defs", "--json", cwd=ROOT)))
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert {"raw_sales", "sales_report", "business_metrics", "trained_model", "predictions"} <= set(assets)
    assert {asset["group_name"] for asset in assets.values()} == {"sales_analytics", "ml_pipeline"}
    assert assets["sales_report"]["dependency_keys"] and "hamilton" in assets["sales_report"]["kinds"]
    assert "pandas" in assets["clean_sales"]["kinds"]
    checks = {(check["asset_key"], check["name"]) for check in listed["asset_checks"]}
    assert {("predictions", "values_in_validator"), ("revenue", "range_validator")} <= checks
    assert {job["name"] for job in listed["jobs"]} >= {"sales_daily", "ml_training"}
    assert {s["name"] for s in listed["schedules"]} == {"sales_daily_schedule", "ml_training_schedule"}
    assert {"landing_files", "retrain_on_sales_metrics", "run_failure_alerts"} <= {
        s["name"] for s in listed["sensors"]
    }


def test_dg_launches_a_sales_partition_and_the_ml_flow(tmp_path, home):
    data = tmp_path / "data"
    write_sample_sales(data / "landing", days=3, start="2026-01-01")
    env = {"PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    succeeded(
        dg_cli("launch", "--assets", "group:sales_analytics", "--partition", "2026-01-02", cwd=ROOT, env=env)
    )
    succeeded(dg_cli("launch", "--assets", "group:ml_pipeline", cwd=ROOT, env=env))
    with instance_at(home) as instance:
        runs = instance.get_runs()
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        assert instance.get_materialized_partitions(dg.AssetKey("sales_report")) == {"2026-01-02"}
        assert instance.get_latest_materialization_event(dg.AssetKey("trained_model")) is not None
    assert "2026-01-02" in ValueStore(data / "assets").read(dg.AssetKey("sales_report"), "2026-01-02")


def test_a_new_project_scaffolds_a_dataflow_checks_it_and_launches_it(project, home, tmp_path):
    assert "orchestration.HamiltonComponent" in succeeded(dg_cli("list", "components", cwd=project))
    succeeded(
        dg_cli(
            "scaffold",
            "defs",
            "orchestration.HamiltonComponent",
            "orders",
            "--module",
            "shop.orders",
            cwd=project,
        )
    )
    defs_yaml = project / "shop" / "defs" / "orders" / "defs.yaml"
    assert "shop.orders" in defs_yaml.read_text()
    assert "All definitions loaded successfully." in succeeded(dg_cli("check", "defs", cwd=project))

    defs_yaml.write_text(
        textwrap.dedent(
            """\
            type: orchestration.HamiltonComponent
            attributes:
              modules: [shop.orders]
              config: {region: "{{ env('REGION', 'emea') }}"}
              translation: {key_prefix: orders, owners: ["team:{{ env('TEAM', 'nobody') }}"]}
            """
        )
    )
    env = {
        "REGION": "apac",
        "TEAM": "analytics",
        "PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
    }
    listed = json.loads(succeeded(dg_cli("list", "defs", "--json", cwd=project, env=env)))
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert set(assets) == {"orders/orders", "orders/total"}
    assert assets["orders/total"]["dependency_keys"] == ["orders/orders"]  # the prefix applied once
    assert assets["orders/total"]["owners"] == [{"team": "analytics"}]

    succeeded(dg_cli("launch", "--assets", "orders/total,orders/orders", cwd=project, env=env))
    stored = ValueStore(tmp_path / "data" / "assets").read(dg.AssetKey(["orders", "orders"]))
    assert set(stored["region"]) == {"apac"}


@pytest.mark.parametrize(
    ("attributes", "field", "says"),
    [
        ("modules: [shop.orders]\n  partition_inptu: day", "partition_inptu", "was unexpected"),
        ("config: {region: emea}", "attributes", "'modules' is a required property"),
        ("modules: [shop.ordres]", "attributes.modules", "cannot import 'shop.ordres': it was not found"),
        ("modules: [shop.broken]", "attributes.modules", "the warehouse moved"),
        (
            "modules: [shop.orders]\n  partitions_def: {type: monthly, start_date: '2026-01-01'}",
            "partitions_def",
            "",
        ),
    ],
    ids=[
        "unknown field",
        "missing modules",
        "no such module",
        "module fails to import",
        "wrong partition type",
    ],
)
def test_bad_yaml_is_one_clear_error_and_nothing_launches(project, home, attributes, field, says):
    folder = project / "shop" / "defs" / "orders"
    folder.mkdir()
    (folder / "defs.yaml").write_text(f"type: orchestration.HamiltonComponent\nattributes:\n  {attributes}\n")
    checked = dg_cli("check", "defs", cwd=project)
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert "shop/defs/orders/defs.yaml" in output and field in output and says in output

    launched = dg_cli("launch", "--assets", "*", cwd=project, env={"DAGSTER_HOME": str(home)})
    assert launched.returncode != 0
    with instance_at(home) as instance:
        assert instance.get_runs() == []


def test_dg_dev_serves_the_shipped_project(tmp_path, home):
    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    env = {"PIPELINE_DATA_DIR": str(data), "VIRTUAL_ENV": str(BIN.parent)}
    with dagster_dev(None, home, env, command=[str(BIN / "dg"), "dev"]) as (client, _):
        nodes = client.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
        groups = {node["groupName"] for node in nodes}
        assert groups == {"sales_analytics", "ml_pipeline"}
        assert ["trained_model"] in [node["assetKey"]["path"] for node in nodes]
