"""Lineage of the shipped dataflows: spec-valid events, run hierarchy, joins, column lineage."""

import json
import time
from collections import Counter, defaultdict
from datetime import UTC

import dagster as dg
import pytest
from openlineage.client.uuid import generate_static_uuid

from hamilton_pipelines import ml_pipeline, sales_analytics
from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import hamilton_assets
from orchestration.lineage import client as lineage_client
from tests.conftest import run_event
from tests.lineage.openlineage_spec import require_spec, validate_event

TERMINAL = {"COMPLETE", "FAIL", "ABORT"}


def read_events(data_dir) -> list[dict]:
    """Everything emitted so far, including what other (perhaps dead) processes left spooled."""
    deadline = time.monotonic() + 10
    while lineage_client.delivery().deliver_pending()[1]:
        assert time.monotonic() < deadline, "lineage events were not delivered within 10 s"
        time.sleep(0.05)
    path = data_dir / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def shipped_run(data_dir, instance, monkeypatch):
    """One materialization of both shipped dataflows; returns (result, events)."""
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED", "OPENLINEAGE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    landing = data_dir / "landing"
    write_sample_sales(landing, days=2, rows_per_day=100)
    sales = hamilton_assets(sales_analytics, config={"sales_scope": "all", "landing_dir": str(landing)})
    result = dg.materialize([sales, hamilton_assets(ml_pipeline)], instance=instance)
    assert result.success
    return result, read_events(data_dir)


def completes(events) -> dict[str, dict]:
    """Asset runs' COMPLETE events by job name."""
    return {
        e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE" and "parent" in e["run"]["facets"]
    }


def test_every_event_validates_against_the_openlineage_spec(shipped_run):
    require_spec()
    _, events = shipped_run
    assert len(events) == 2 + 2 * 21  # the run, and START + COMPLETE for each of 21 assets
    for event in events:
        validate_event(event)


def test_exactly_one_start_and_one_terminal_event_per_run_id(shipped_run):
    _, events = shipped_run
    by_run = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event["eventType"])
    for run_id, types in by_run.items():
        assert types[0] == "START" and Counter(types) == {"START": 1, "COMPLETE": 1}, (run_id, types)
    jobs_per_run = {(e["run"]["runId"], e["job"]["name"]) for e in events}
    assert len({run_id for run_id, _ in jobs_per_run}) == len(jobs_per_run)  # no runId for two jobs


def test_asset_runs_are_children_of_the_dagster_run_with_deterministic_ids(shipped_run, instance):
    result, events = shipped_run
    run_events = [e for e in events if "parent" not in e["run"]["facets"]]
    # an ad-hoc materialization is named after the dataflows it ran, not Dagster's __ephemeral_asset_job__
    assert {e["job"]["name"] for e in run_events} == {"ml_pipeline+sales_analytics"}
    created = instance.get_run_record_by_id(result.run_id).create_timestamp.replace(tzinfo=UTC)
    run_uuid = str(generate_static_uuid(created, f"dagster-run:{result.run_id}".encode()))
    assert run_events[0]["run"]["runId"] == run_uuid
    report = completes(events)["sales_analytics.sales_report"]
    parent = report["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_uuid and parent["root"]["run"]["runId"] == run_uuid
    assert parent["job"]["name"] == parent["root"]["job"]["name"] == "ml_pipeline+sales_analytics"
    assert report["run"]["runId"] == str(
        generate_static_uuid(created, f"{result.run_id}:sales_report".encode())
    )


def test_inputs_join_the_outputs_of_upstream_assets(shipped_run, data_dir):
    _, events = shipped_run
    done = completes(events)
    output_of = {job: e["outputs"][0]["name"] for job, e in done.items()}
    assert output_of["sales_analytics.clean_sales"] == str(
        data_dir / "assets" / "clean_sales" / "value.parquet"
    )
    assert all(e["outputs"][0]["namespace"] == "file" for e in done.values())
    assert sorted(i["name"] for i in done["sales_analytics.sales_with_revenue"]["inputs"]) == sorted(
        output_of[f"sales_analytics.{name}"] for name in ("clean_sales", "revenue", "is_large_order")
    )
    landing = sorted(str(p.resolve()) for p in (data_dir / "landing").glob("sales_*.csv"))
    assert sorted(i["name"] for i in done["sales_analytics.raw_sales"]["inputs"]) == landing
    assert [(i["namespace"], i["name"]) for i in done["sales_analytics.clean_sales"]["inputs"]] == [
        ("file", output_of["sales_analytics.raw_sales"])
    ]


def test_facets_of_an_asset_run(shipped_run):
    _, events = shipped_run
    event = completes(events)["sales_analytics.revenue"]
    job_facets, output = event["job"]["facets"], event["outputs"][0]
    assert job_facets["jobType"]["integration"] == "HAMILTON" and job_facets["jobType"]["jobType"] == "ASSET"
    assert job_facets["jobType"]["processingType"] == "BATCH"
    assert job_facets["sourceCodeLocation"]["url"] == (
        f"file://{sales_analytics.__file__}#L{sales_analytics.revenue.__code__.co_firstlineno}"
    )
    assert job_facets["documentation"]["description"].startswith("Order revenue")
    assert event["run"]["facets"]["processing_engine"]["name"] == "Hamilton"
    assert [(f["name"], f["type"]) for f in output["facets"]["schema"]["fields"]] == [("revenue", "float64")]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert output["outputFacets"]["outputStatistics"]["size"] > 0
    [assertion] = output["facets"]["dataQualityAssertions"]["assertions"]
    assert (assertion["assertion"], assertion["success"], assertion["severity"]) == (
        "range_validator",
        True,
        "error",
    )
    assert "in range" in assertion["description"]
    node = event["run"]["facets"]["hamilton_node"]  # this project's facet, validated by its schema above
    assert node["processingTimeMs"] >= 0
    assert node["recordsProcessed"] == output["outputFacets"]["outputStatistics"]["rowCount"]
    assert (
        "recordsProcessed"
        not in completes(events)["ml_pipeline.trained_model"]["run"]["facets"]["hamilton_node"]
    )
    starts = [e for e in events if e["eventType"] == "START" and "parent" in e["run"]["facets"]]
    assert starts and not any("hamilton_node" in e["run"]["facets"] for e in starts)  # only an end knows


def column_sources(event) -> dict[str, set[tuple[str, str]]]:
    fields = event["outputs"][0]["facets"].get("columnLineage", {}).get("fields", {})
    return {
        column: {(f["name"].split("/assets/")[1].split("/")[0], f["field"]) for f in spec["inputFields"]}
        for column, spec in fields.items()
    }


def test_column_lineage_matches_the_lineage_derived_by_hand(shipped_run, instance):
    result, events = shipped_run
    done = completes(events)
    # Hamilton column nodes: exact.
    assert column_sources(done["sales_analytics.revenue"]) == {
        "revenue": {("clean_sales", "quantity"), ("clean_sales", "unit_price")}
    }
    assert column_sources(done["sales_analytics.is_large_order"]) == {
        "is_large_order": {("clean_sales", "quantity")}
    }
    assert column_sources(done["ml_pipeline.phenol_ratio"]) == {
        "phenol_ratio": {("raw_dataset", "flavanoids"), ("raw_dataset", "total_phenols")}
    }
    # A frame assembled from a frame and Series: Series by name, the rest passes through by name.
    assembled = column_sources(done["sales_analytics.sales_with_revenue"])
    assert assembled["revenue"] == {("revenue", "revenue")}
    assert assembled["is_large_order"] == {("is_large_order", "is_large_order")}
    assert assembled["order_id"] == {("clean_sales", "order_id")}
    # An opaque whole-frame function: same name where possible, else every input column.
    summary = column_sources(done["sales_analytics.region_summary"])
    assert summary["region"] == {("sales_with_revenue", "region")}
    every_input_column = {
        ("sales_with_revenue", c)
        for c in (
            "order_id",
            "order_date",
            "region",
            "product",
            "quantity",
            "unit_price",
            "customer_id",
            "revenue",
            "is_large_order",
        )
    }
    assert summary["orders"] == every_input_column
    unknown = done["sales_analytics.region_summary"]["outputs"][0]["facets"]["columnLineage"]["fields"][
        "orders"
    ]
    assert {f["transformations"][0]["type"] for f in unknown["inputFields"]} == {"INDIRECT"}
    # Dagster shows the same lineage on the asset page.
    materialization = instance.get_latest_materialization_event(dg.AssetKey("revenue")).asset_materialization
    deps = materialization.metadata["dagster/column_lineage"].value.deps_by_column["revenue"]
    assert {(d.asset_key.to_user_string(), d.column_name) for d in deps} == {
        ("clean_sales", "quantity"),
        ("clean_sales", "unit_price"),
    }


def test_a_failing_run_ends_with_fail_events_and_the_stack_trace(make_module, data_dir, instance):
    flow = make_module(
        "def a() -> int:\n    return 1\n"
        "def b(a: int) -> int:\n    raise ValueError('b is broken')\n"
        "def c(b: int) -> int:\n    return b\n"
    )
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    assert not result.success
    events = read_events(data_dir)
    states = [(e["job"]["name"].split(".")[-1], e["eventType"]) for e in events]
    assert sorted(states) == sorted(
        [
            (flow.__name__, "START"),
            ("a", "START"),
            ("a", "COMPLETE"),
            ("b", "START"),
            ("b", "FAIL"),
            (flow.__name__, "FAIL"),
        ]
    )
    assert states[0] == (flow.__name__, "START") and states[-1] == (flow.__name__, "FAIL")
    assert states.index(("b", "START")) < states.index(("b", "FAIL"))
    failed_asset = events[states.index(("b", "FAIL"))]["run"]["facets"]["errorMessage"]
    assert failed_asset["message"] == "ValueError: b is broken"
    assert "raise ValueError('b is broken')" in failed_asset["stackTrace"]
    assert failed_asset["programmingLanguage"] == "python"
    require_spec()
    for event in events:
        validate_event(event)


def test_scheduled_runs_carry_their_nominal_time(make_module, data_dir, instance):
    flow = make_module("def a() -> int:\n    return 1\n")
    result = dg.materialize(
        [hamilton_assets(flow)],
        instance=instance,
        tags={"dagster/scheduled_execution_time": "2026-01-02T06:00:00+00:00"},
    )
    assert result.success
    for event in read_events(data_dir):
        assert event["run"]["facets"]["nominalTime"]["nominalStartTime"] == "2026-01-02T06:00:00+00:00"


def test_namespace_comes_from_the_environment(make_module, data_dir, instance, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "analytics-prod")
    flow = make_module("def a() -> int:\n    return 1\n")
    assert dg.materialize([hamilton_assets(flow)], instance=instance).success
    events = read_events(data_dir)
    assert {e["job"]["namespace"] for e in events} == {"analytics-prod"}
    assert events[1]["run"]["facets"]["parent"]["job"]["namespace"] == "analytics-prod"


def test_partitioned_runs_carry_the_partition_window_as_nominal_time(make_module, data_dir, instance):
    flow = make_module("def total(day: str) -> str:\n    return day\n")
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assets = hamilton_assets(flow, partitions_def=daily, partition_input="day")
    assert dg.materialize([assets], instance=instance, partition_key="2026-01-03").success
    asset_events = [e for e in read_events(data_dir) if "parent" in e["run"]["facets"]]
    nominal = asset_events[0]["run"]["facets"]["nominalTime"]
    assert nominal["nominalStartTime"].startswith("2026-01-03T00:00:00")
    assert nominal["nominalEndTime"].startswith("2026-01-04T00:00:00")
    assert asset_events[-1]["outputs"][0]["name"].endswith("/assets/total/partition=2026-01-03.txt")


def test_a_range_run_has_one_asset_run_per_partition(make_module, data_dir, instance):
    require_spec()
    flow = make_module("def total(day: str) -> str:\n    return day\n")
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assets = hamilton_assets(
        flow, partitions_def=daily, partition_input="day", backfill_policy=dg.BackfillPolicy.single_run()
    )
    range_tags = {
        "dagster/asset_partition_range_start": "2026-01-02",
        "dagster/asset_partition_range_end": "2026-01-04",
    }
    assert dg.materialize([assets], instance=instance, tags=range_tags).success
    events = read_events(data_dir)
    for event in events:
        validate_event(event)
    [run_start] = [e for e in events if e["eventType"] == "START" and "parent" not in e["run"]["facets"]]
    nominal = run_start["run"]["facets"]["nominalTime"]
    assert nominal["nominalStartTime"].startswith("2026-01-02T00:00:00")
    assert nominal["nominalEndTime"].startswith("2026-01-05T00:00:00")
    complete = [e for e in events if e["eventType"] == "COMPLETE" and "parent" in e["run"]["facets"]]
    assert [e["outputs"][0]["name"].rsplit("/", 1)[1] for e in complete] == [
        "partition=2026-01-02.txt",
        "partition=2026-01-03.txt",
        "partition=2026-01-04.txt",
    ]
    assert len({e["run"]["runId"] for e in complete}) == 3
    assert Counter(e["run"]["runId"] for e in events if "parent" in e["run"]["facets"]) == {
        e["run"]["runId"]: 2 for e in complete
    }  # START + COMPLETE each


def test_a_canceled_run_ends_with_abort_from_the_sensor(make_module, data_dir, instance):
    from orchestration.lineage.runs import run_canceled

    flow = make_module("def a() -> int:\n    return 1\n")
    job = dg.Definitions(assets=[hamilton_assets(flow)]).resolve_implicit_global_asset_job_def()
    run = instance.create_run_for_job(job_def=job)
    instance.report_run_canceled(run)
    run = instance.get_run_by_id(run.run_id)
    canceled = run_event(instance, run.run_id, dg.DagsterEventType.RUN_CANCELED)
    context = dg.build_run_status_sensor_context(
        sensor_name="openlineage_run_canceled",
        dagster_event=canceled,
        dagster_instance=instance,
        dagster_run=run,
    )
    run_canceled(context)
    run_canceled(context)
    events = read_events(data_dir)
    assert [e["eventType"] for e in events] == ["START", "ABORT"]
    require_spec()
    for event in events:
        validate_event(event)


def test_a_job_names_its_runs_and_one_dataflow_names_an_ad_hoc_run(make_module, data_dir, instance):
    flow = make_module("def one() -> int:\n    return 1\n", name="orders_flow")
    assets = hamilton_assets(flow)
    job = dg.define_asset_job("nightly_orders", selection=[assets])
    defs = dg.Definitions(assets=[assets], jobs=[job])
    assert defs.resolve_job_def("nightly_orders").execute_in_process(instance=instance).success
    assert dg.materialize([assets], instance=instance).success
    names = [e["job"]["name"] for e in read_events(data_dir) if "parent" not in e["run"]["facets"]]
    assert names == ["nightly_orders", "nightly_orders", "orders_flow", "orders_flow"]


def test_datasets_in_an_object_store_are_named_by_bucket_and_key():
    from orchestration.lineage.events import dataset_id

    assert dataset_id("/data/assets/a/value.parquet") == ("file", "/data/assets/a/value.parquet")
    assert dataset_id("file:///data/a.parquet") == ("file", "/data/a.parquet")
    assert dataset_id("s3://lake/prod/assets/a/value.parquet") == ("s3://lake", "prod/assets/a/value.parquet")
