"""`OpenLineageAdapter` on a plain Hamilton driver: one run per execution with a child run per
asset, datasets named by dataflow and node (files where a node reads or saves one), column
lineage and checks, valid against the OpenLineage spec; a dead or hanging backend neither fails
nor holds the driver, and what it could not take stays spooled for `flush`."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hamilton import driver

from orchestration import OpenLineageAdapter
from orchestration.lineage import client, events
from orchestration.lineage.delivery import LineageSpool
from tests.lineage.openlineage_spec import require_spec, validate_event
from tests.support import ROOT
from tests.support.http_receiver import LineageReceiver

FLOW = """
import pandas as pd
from hamilton.function_modifiers import check_output, extract_columns, save_to, source


def orders(orders_file: str) -> pd.DataFrame:
    \"\"\"Orders as landed.\"\"\"
    frame = pd.read_csv(orders_file)
    frame.attrs["source_files"] = [orders_file]
    return frame


@extract_columns("price", "quantity")
def order_columns(orders: pd.DataFrame) -> pd.DataFrame:
    return orders


@check_output(range=(0.0, 100.0), importance="warn")
def amount(price: pd.Series, quantity: pd.Series) -> pd.Series:
    return (price * quantity).astype(float)


@save_to.csv(path=source("totals_path"), output_name_="totals_csv")
def totals(orders: pd.DataFrame, amount: pd.Series) -> pd.DataFrame:
    return orders.assign(amount=amount)


def broken(totals: pd.DataFrame) -> int:
    raise ValueError("broken on purpose")
"""
EXIT_SCRIPT = """
import sys
from hamilton import driver
from orchestration import OpenLineageAdapter
import tests.orchestration.counting_flow as flow
dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter(wait_s=1)).build()
print(dr.execute(["summary"])["summary"])
"""


@pytest.fixture(autouse=True)
def no_lineage_config(data_dir, monkeypatch):
    """Only the configuration a test sets; this process's deliveries closed afterwards."""
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    yield
    client.close_deliveries()
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        os.environ.pop(name, None)


@pytest.fixture
def flow(make_module, tmp_path):
    (tmp_path / "orders.csv").write_text("price,quantity\n2.5,4\n10,1\n")
    return make_module(FLOW, name="orders_flow")


def delivered(data_dir: Path) -> list[dict]:
    """The events as the default file transport wrote them, once the spool is delivered."""
    assert client.delivery().flush(30) == 0
    lines = (data_dir / "lineage" / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def run_inputs(tmp_path: Path) -> dict:
    return {"orders_file": str(tmp_path / "orders.csv"), "totals_path": str(tmp_path / "totals.csv")}


def test_an_execution_is_a_run_and_each_asset_a_child_run_with_datasets_and_column_lineage(
    flow, tmp_path, data_dir
):
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    dr.execute(["totals", "totals_csv"], inputs=run_inputs(tmp_path))
    sent = delivered(data_dir)

    parent = sent[0]
    assert (parent["eventType"], parent["job"]["name"]) == ("START", "orders_flow")
    assert parent["job"]["facets"]["jobType"]["integration"] == "HAMILTON"
    assert parent["run"]["facets"]["processing_engine"]["name"] == "Hamilton"
    assert (sent[-1]["eventType"], sent[-1]["run"]["runId"]) == ("COMPLETE", parent["run"]["runId"])
    children = sent[1:-1]
    ran = [(e["eventType"], e["job"]["name"].removeprefix("orders_flow.")) for e in children]
    assert ran == [
        (state, name)
        for name in ("orders", "order_columns", "amount", "totals", "totals_csv")
        for state in ("START", "COMPLETE")
    ]
    for event in children:
        facet = event["run"]["facets"]["parent"]
        assert facet["run"]["runId"] == facet["root"]["run"]["runId"] == parent["run"]["runId"]
        assert (facet["job"]["namespace"], facet["job"]["name"]) == ("dagster", "orders_flow")
    ends = {
        e["job"]["name"].removeprefix("orders_flow."): e for e in children if e["eventType"] == "COMPLETE"
    }
    assert all(e["run"]["facets"]["hamilton_node"]["processingTimeMs"] >= 0 for e in ends.values())
    assert ends["orders"]["run"]["facets"]["hamilton_node"]["recordsProcessed"] == 2

    named = "hamilton://orders_flow"
    assert ends["orders"]["inputs"] == [
        {"namespace": "file", "name": str((tmp_path / "orders.csv").resolve())}
    ]
    assert ends["orders"]["outputs"][0]["namespace"] == named
    assert ends["amount"]["inputs"] == [{"namespace": named, "name": "order_columns"}]
    amount = ends["amount"]["outputs"][0]
    assert amount["name"] == "amount"
    sources = amount["facets"]["columnLineage"]["fields"]["amount"]["inputFields"]
    assert [(s["namespace"], s["name"], s["field"]) for s in sources] == [
        (named, "order_columns", "price"),
        (named, "order_columns", "quantity"),
    ]
    [check] = amount["facets"]["dataQualityAssertions"]["assertions"]
    assert (check["assertion"], check["success"], check["severity"]) == ("range_validator", True, "warn")
    assert ends["totals_csv"]["inputs"] == [{"namespace": named, "name": "totals"}]
    assert ends["totals_csv"]["outputs"][0] == {"namespace": "file", "name": str(tmp_path / "totals.csv")}

    require_spec()
    for event in sent:
        validate_event(event)


def test_a_failing_node_fails_its_asset_run_and_the_execution_with_the_error(flow, tmp_path, data_dir):
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter(name="orders")).build()
    with pytest.raises(ValueError, match="broken on purpose"):
        dr.execute(["broken"], inputs=run_inputs(tmp_path))
    sent = delivered(data_dir)
    failed = [
        (e["job"]["name"], e["run"]["facets"]["errorMessage"]["message"])
        for e in sent
        if e["eventType"] == "FAIL"
    ]
    assert failed == [
        ("orders.broken", "ValueError: broken on purpose"),
        ("orders", "ValueError: broken on purpose"),
    ]
    require_spec()
    for event in sent:
        validate_event(event)


def test_an_override_is_not_a_run_but_its_columns_still_give_lineage(flow, tmp_path, data_dir):
    import pandas as pd

    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    given = pd.DataFrame({"price": [1.0], "quantity": [3]})
    dr.execute(["totals"], inputs=run_inputs(tmp_path), overrides={"orders": given})
    sent = delivered(data_dir)
    ran = {e["job"]["name"] for e in sent[1:-1]}
    assert ran == {"orders_flow.order_columns", "orders_flow.amount", "orders_flow.totals"}
    totals = next(
        e for e in sent if e["job"]["name"] == "orders_flow.totals" and e["eventType"] == "COMPLETE"
    )
    price = totals["outputs"][0]["facets"]["columnLineage"]["fields"]["price"]["inputFields"]
    assert [(s["name"], s["field"]) for s in price] == [("orders", "price")]


def test_disabled_lineage_emits_nothing(flow, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    dr.execute(["totals"], inputs=run_inputs(tmp_path))
    assert not (data_dir / "lineage").exists()


@pytest.mark.services  # the driver and the lineage CLI in processes of their own
def test_a_hanging_backend_holds_the_exit_at_most_wait_s_and_flush_delivers_the_rest(data_dir):
    spool = LineageSpool(data_dir / "lineage" / "spool")
    with LineageReceiver("hang") as backend:
        # The transport would wait 60 s for an answer: only the adapter's wait_s=1 ends it sooner.
        env = {
            **_env(data_dir, ""),
            "OPENLINEAGE__TRANSPORT__TYPE": "http",
            "OPENLINEAGE__TRANSPORT__URL": backend.url,
            "OPENLINEAGE__TRANSPORT__TIMEOUT": "60",
        }
        del env["OPENLINEAGE_URL"]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30  # imports, the execution and 1 s: far from 60 s
        assert "not delivered before exit (the backend did not answer within 1 s)" in done.stderr
        assert "lineage.cli flush" in done.stderr
        assert "{'sum': " in done.stdout  # the driver's own result, unharmed
        kept = [payload for _, payload in spool.pending()]
        assert len(kept) >= 2 and kept[-1]["eventType"] == "COMPLETE"

        backend.set_mode("ok")
        flushed = subprocess.run(
            [sys.executable, "-m", "orchestration.lineage.cli", "flush"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert flushed.returncode == 0, flushed.stderr
        assert backend.wait_for(len(kept), 10)[-len(kept) :] == kept
    assert spool.pending() == []


@pytest.mark.services  # a fresh interpreter: the events must be out before it exits
def test_a_working_backend_has_every_event_when_the_process_exits(data_dir):
    with LineageReceiver("ok") as backend:
        done = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT],
            cwd=ROOT,
            env=_env(data_dir, backend.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        names = [(e["eventType"], e["job"]["name"]) for e in backend.events]
    assert names[0] == ("START", "counting_flow") and names[-1] == ("COMPLETE", "counting_flow")
    assert len(names) == 2 + 2 * 5  # the execution, START and COMPLETE of its five assets
    assert LineageSpool(data_dir / "lineage" / "spool").pending() == []


def _env(data_dir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    return {
        **env,
        "PIPELINE_DATA_DIR": str(data_dir),
        "OPENLINEAGE_URL": url,
        "HAMILTON_TELEMETRY_ENABLED": "false",
    }


def test_a_data_directory_that_cannot_be_used_never_fails_the_driver(flow, tmp_path, monkeypatch, caplog):
    not_a_folder = tmp_path / "data-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(not_a_folder))
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    assert dr.execute(["totals"], inputs=run_inputs(tmp_path))["totals"]["amount"].tolist() == [10.0, 10.0]
    assert "OpenLineage: no events for execution" in caplog.text and str(not_a_folder) in caplog.text


def test_an_event_that_cannot_be_built_costs_that_event_only(flow, tmp_path, data_dir, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no dataset today")

    monkeypatch.setattr(events, "output_dataset", broken)
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    assert dr.execute(["totals"], inputs=run_inputs(tmp_path))["totals"]["amount"].tolist() == [10.0, 10.0]
    assert "OpenLineage: no event for node orders" in caplog.text
    sent = delivered(data_dir)
    assert (sent[0]["eventType"], sent[-1]["eventType"]) == ("START", "COMPLETE")  # the execution's own


LOADED_FLOW = """
import pandas as pd
from hamilton.function_modifiers import load_from, source


@load_from.csv(path=source("prices_file"))
def prices(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def doubled(prices: pd.DataFrame) -> pd.DataFrame:
    return prices * 2
"""


def test_files_loaded_and_materialized_are_datasets_of_their_runs(make_module, tmp_path, data_dir):
    from hamilton.io.materialization import to

    (tmp_path / "prices.csv").write_text("price\n1\n2\n")
    flow = make_module(LOADED_FLOW, name="loaded_flow")
    dr = driver.Builder().with_modules(flow).with_adapters(OpenLineageAdapter()).build()
    saved = tmp_path / "doubled.csv"
    dr.materialize(
        to.csv(id="doubled_csv", dependencies=["doubled"], path=str(saved)),
        additional_vars=["doubled"],
        inputs={"prices_file": str(tmp_path / "prices.csv")},
    )
    ends = {e["job"]["name"]: e for e in delivered(data_dir) if e["eventType"] == "COMPLETE"}
    assert ends["loaded_flow.prices"]["inputs"] == [
        {"namespace": "file", "name": str(tmp_path / "prices.csv")}
    ]
    assert ends["loaded_flow.doubled_csv"]["inputs"] == [
        {"namespace": "hamilton://loaded_flow", "name": "doubled"}
    ]
    assert ends["loaded_flow.doubled_csv"]["outputs"] == [{"namespace": "file", "name": str(saved)}]


PARALLEL_FLOW = """
from hamilton.htypes import Collect, Parallelizable


def part(parts: int = 6) -> Parallelizable[int]:
    yield from range(parts)


def squared(part: int) -> int:
    return part * part


def total(squared: Collect[int]) -> int:
    return sum(squared)
"""


def parallel_driver(flow, executor):
    return (
        driver.Builder()
        .with_modules(flow)
        .enable_dynamic_execution(allow_experimental_mode=True)
        .with_remote_executor(executor)
        .with_adapters(OpenLineageAdapter())
        .build()
    )


def test_nodes_on_several_threads_give_each_asset_one_run(make_module, data_dir):
    from hamilton.execution import executors

    flow = make_module(PARALLEL_FLOW, name="parallel_flow")
    assert parallel_driver(flow, executors.MultiThreadingExecutor(4)).execute(["total"])["total"] == 55
    names = [(e["eventType"], e["job"]["name"]) for e in delivered(data_dir)]
    assert (names[0], names[-1]) == (("START", "parallel_flow"), ("COMPLETE", "parallel_flow"))
    # six items of `squared` ran on four threads: still one run of the asset (the first item's)
    runs = sorted(names[1:-1])
    assert runs == sorted(
        (state, f"parallel_flow.{a}") for a in ("part", "squared", "total") for state in ("START", "COMPLETE")
    )


@pytest.mark.services  # Hamilton's multiprocessing executor starts worker processes
def test_a_multiprocessing_executor_runs_and_its_execution_is_reported(make_module, data_dir):
    from hamilton.execution import executors

    flow = make_module(PARALLEL_FLOW, name="parallel_flow_mp")
    dr = parallel_driver(flow, executors.MultiProcessingExecutor(2))
    assert dr.execute(["total"])["total"] == 55  # the adapter pickles for the workers
    names = [(e["eventType"], e["job"]["name"]) for e in delivered(data_dir)]
    assert (names[0], names[-1]) == (("START", "parallel_flow_mp"), ("COMPLETE", "parallel_flow_mp"))
