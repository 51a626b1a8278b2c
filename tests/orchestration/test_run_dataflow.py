"""`python -m orchestration.run_dataflow`: a dataflow run without Dagster, in a real subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hamilton_pipelines.sample_data import write_sample_sales
from tests.orchestration.test_progress import bars

pytestmark = pytest.mark.services  # `python -m orchestration.run_dataflow`
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_data_dir(data_dir):
    """Lineage goes to this test's data directory (`PIPELINE_DATA_DIR`), not the checkout's."""


def run_dataflow(*args: str, **env: str) -> subprocess.CompletedProcess:
    ignored = ("PIPELINE_PROGRESS_BAR", "DAGSTER_HOME", "PROMETHEUS_PUSHGATEWAY_URL")
    clean = {k: v for k, v in os.environ.items() if k not in ignored and not k.startswith("OPENLINEAGE")}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.run_dataflow", *args],
        cwd=ROOT,
        env={**clean, "HAMILTON_TELEMETRY_ENABLED": "false", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_asset_by_default_with_a_bar_over_assets(tmp_path):
    run = run_dataflow("hamilton_pipelines.ml_pipeline", PIPELINE_PROGRESS_BAR="1")
    assert run.returncode == 0, run.stderr
    assert bars(run.stderr)[-1] == ("ml_pipeline", 10, 10)  # assets, not Hamilton's 21 nodes
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ml_pipeline: 10 assets computed in ")
    assert [line.split()[0] for line in lines[1:]] == [
        "raw_dataset",
        "target",
        "phenol_ratio",
        "color_hue_ratio",
        "log_proline",
        "feature_matrix",
        "train_test_data",
        "trained_model",
        "predictions",
        "evaluation_metrics",
    ]
    assert "feature_matrix      DataFrame, 178 rows × 16 columns" in run.stdout
    assert "predictions         Series, 45 rows (int64)" in run.stdout


def test_selected_outputs_with_config_and_inputs(tmp_path):
    landing = tmp_path / "landing"
    write_sample_sales(landing, days=2, start="2026-01-01")
    run = run_dataflow(
        "hamilton_pipelines.sales_analytics",
        "--config",
        "sales_scope=all",
        "--input",
        f"landing_dir={landing}",
        "--output",
        "region_summary,business_metrics",
        PIPELINE_PROGRESS_BAR="1",
    )
    assert run.returncode == 0, run.stderr
    # raw, clean, revenue, is_large_order, with_revenue, both summaries, average, metrics: not the
    # daily revenue or the report, which nothing requested needs
    assert bars(run.stderr)[-1] == ("sales_analytics", 9, 9)
    assert run.stdout.splitlines()[1:] == [
        "  region_summary    DataFrame, 4 rows × 6 columns",
        "  business_metrics  dict, 8 keys",
    ]


def test_lineage_of_the_execution_and_each_asset_by_default_and_none_with_no_lineage(data_dir):
    run = run_dataflow("tests.orchestration.counting_flow", "--output", "summary")
    assert run.returncode == 0, run.stderr
    lines = (data_dir / "lineage" / "events.jsonl").read_text().splitlines()
    events = [(e["eventType"], e["job"]["name"]) for e in map(json.loads, lines)]
    assert events[0] == ("START", "counting_flow") and events[-1] == ("COMPLETE", "counting_flow")
    assets = ["source", "table", "total", "doubled", "summary"]
    assert events[1:-1] == [(state, f"counting_flow.{a}") for a in assets for state in ("START", "COMPLETE")]

    run = run_dataflow("tests.orchestration.counting_flow", "--output", "summary", "--no-lineage")
    assert run.returncode == 0, run.stderr
    assert len((data_dir / "lineage" / "events.jsonl").read_text().splitlines()) == len(lines)


def test_no_bar_when_stderr_is_not_a_terminal():
    run = run_dataflow("tests.orchestration.counting_flow", "--input", "rows=3", "--output", "summary")
    assert run.returncode == 0, run.stderr
    assert bars(run.stderr) == []
    assert run.stdout.splitlines()[1] == "  summary  dict, 2 keys"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["hamilton_pipelines.ml_pipelin"],
            "cannot import module 'hamilton_pipelines.ml_pipelin' (ModuleNotFoundError",
        ),
        (
            ["hamilton_pipelines.ml_pipeline", "--output", "predictions,predictionz"],
            "unknown output 'predictionz' in ml_pipeline. Fix: use one of its assets: raw_dataset, ",
        ),
        (
            ["tests.orchestration.counting_flow", "--input", "rowz=3"],
            "unknown input 'rowz'. Fix: use one of counting_flow's inputs: rows.",
        ),
        (
            ["tests.orchestration.counting_flow", "--input", "rows=many"],
            "--input rows=many: rows takes int values, not 'many'.",
        ),
        (
            [
                "hamilton_pipelines.sales_analytics",
                "--config",
                "sales_scope=daily",
                "--input",
                "landing_dir=x",
            ],
            "missing input sales_date (str, read by raw_sales). Fix: pass --input NAME=VALUE",
        ),
    ],
    ids=["module", "output", "input-name", "input-value", "missing-input"],
)
def test_bad_names_exit_2_with_one_clear_message(args, message):
    run = run_dataflow(*args)
    assert run.returncode == 2
    assert f"error: {message}" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
