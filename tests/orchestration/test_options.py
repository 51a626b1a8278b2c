"""`StepOptions` (how steps run, given whole or as keywords) and `HamiltonRuntime` (what a step
reads when it runs: a resource with `EnvVar` fields, falling back to the old variables)."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from orchestration import (
    DataflowError,
    HamiltonRuntime,
    ProgressSettings,
    StepOptions,
    ValueStore,
    hamilton_assets,
    hamilton_assets_by_group,
)

FLOW = """
def orders() -> int:
    return 3


def total(orders: int) -> int:
    return orders * 2
"""


def test_options_given_whole_or_as_keywords_build_the_same_step(make_module):
    module = make_module(FLOW)
    retry = dg.RetryPolicy(max_retries=2, delay=0.1)
    whole = hamilton_assets(module, options=StepOptions(retry_policy=retry, pool="db", op_tags={"team": "x"}))
    keywords = hamilton_assets(module, retry_policy=retry, pool="db", op_tags={"team": "x"})
    for assets in (whole, keywords):
        assert assets.op.retry_policy == retry and assets.op.pool == "db" and assets.op.tags["team"] == "x"


def test_keywords_replace_the_fields_of_the_options_given(make_module):
    shared = StepOptions(pool="db", retry_policy=dg.RetryPolicy(max_retries=1))
    assets = hamilton_assets(make_module(FLOW), options=shared, pool="warehouse")
    assert assets.op.pool == "warehouse" and assets.op.retry_policy.max_retries == 1
    assert shared.pool == "db"  # the shared object is not changed


def test_an_unknown_keyword_is_refused_with_the_ones_there_are(make_module):
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) retries\b.*retry_policy"):
        hamilton_assets(make_module(FLOW), retries=3)


def test_options_are_frozen_and_keep_no_reference_to_a_callers_list():
    callbacks = [print]
    options = StepOptions(progress_callbacks=callbacks)
    callbacks.append(repr)
    assert options.progress_callbacks == (print,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.pool = "db"  # type: ignore[misc]


def test_max_parallel_nodes_below_one_is_refused():
    with pytest.raises(DataflowError, match="max_parallel_nodes=0"):
        StepOptions(max_parallel_nodes=0)


def test_assets_materialize_with_no_resources_bound_storing_where_the_environment_says(
    make_module, data_dir, instance
):
    assets = hamilton_assets(make_module(FLOW), name="flow")
    assert "flow_runtime" in assets.resource_defs
    assert dg.materialize([assets], instance=instance).success
    assert ValueStore(data_dir / "assets").load(dg.AssetKey("total"))[0] == 6


def test_the_runtime_store_comes_from_an_env_var_read_when_the_step_runs(
    make_module, data_dir, instance, tmp_path, monkeypatch
):
    runtime = HamiltonRuntime(store_url=dg.EnvVar("SALES_STORE"))
    assets = hamilton_assets(make_module(FLOW), runtime=runtime)
    monkeypatch.setenv("SALES_STORE", str(tmp_path / "sales_store"))  # set after the definitions
    assert dg.materialize([assets], instance=instance).success
    assert ValueStore(tmp_path / "sales_store").load(dg.AssetKey("total"))[0] == 6
    assert not (data_dir / "assets").exists()


def test_the_runtime_can_be_set_for_one_run_in_run_config(make_module, data_dir, instance, tmp_path):
    assets = hamilton_assets(make_module(FLOW), name="flow")
    run_config = {"resources": {"flow_runtime": {"config": {"store_url": str(tmp_path / "this_run")}}}}
    assert dg.materialize([assets], instance=instance, run_config=run_config).success
    assert ValueStore(tmp_path / "this_run").load(dg.AssetKey("total"))[0] == 6


def test_dataflows_with_different_runtimes_load_together(make_module, data_dir, instance, tmp_path):
    first = hamilton_assets(make_module(FLOW), name="first")
    second = hamilton_assets(
        make_module(FLOW.replace("orders", "visits").replace("total", "visit_total")),
        name="second",
        runtime=HamiltonRuntime(store_url=str(tmp_path / "second")),
    )
    grouped = hamilton_assets_by_group(
        make_module(FLOW.replace("orders", "calls").replace("total", "call_total")), name="third"
    )
    defs = dg.Definitions(assets=[first, second, *grouped])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success
    assert ValueStore(tmp_path / "second").load(dg.AssetKey("visits"))[0] == 3
    assert ValueStore(data_dir / "assets").load(dg.AssetKey("orders"))[0] == 3


def test_runtime_fields_win_over_the_definitions_which_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPELINE_LIVE_AFTER_S", "5")
    monkeypatch.setenv("PIPELINE_HEARTBEAT_S", "10")
    monkeypatch.setenv("PROMETHEUS_PUSHGATEWAY_URL", "http://127.0.0.1:9091")
    monkeypatch.setenv("PIPELINE_PROGRESS_BAR", "1")
    monkeypatch.setenv("PIPELINE_STORE_URL", str(tmp_path / "env_store"))

    from_env = HamiltonRuntime().settings()
    assert from_env.progress == ProgressSettings(live_after_s=5, heartbeat_s=10)
    assert from_env.metrics_url == "http://127.0.0.1:9091"
    assert from_env.store_location == str(tmp_path / "env_store")
    assert from_env.shows_progress_bar(interactive=False)

    fixed = ProgressSettings(live_after_s=3)
    from_definitions = HamiltonRuntime().settings(store_root="/defs/store", progress=fixed)
    assert from_definitions.store_location == "/defs/store" and from_definitions.progress == fixed

    runtime = HamiltonRuntime(store_url="/run/store", live_after_s=2, pushgateway_url="", progress_bar=False)
    from_runtime = runtime.settings(store_root="/defs/store", progress=fixed)
    assert from_runtime.store_location == "/run/store"
    assert from_runtime.progress == ProgressSettings(live_after_s=2)  # the rest as the definitions fixed
    assert from_runtime.metrics_url is None  # off, whatever the environment says
    assert not from_runtime.shows_progress_bar(interactive=True)


def test_a_bad_runtime_number_is_refused_naming_the_field():
    with pytest.raises(Exception, match="live_after_s"):
        HamiltonRuntime(live_after_s=0)


def test_the_runtime_set_in_run_config_wins_over_store_root(make_module, data_dir, instance, tmp_path):
    assets = hamilton_assets(make_module(FLOW), name="flow", store_root=str(tmp_path / "defs"))
    run_config = {"resources": {"flow_runtime": {"config": {"store_url": str(tmp_path / "this_run")}}}}
    assert dg.materialize([assets], instance=instance, run_config=run_config).success
    assert ValueStore(tmp_path / "this_run").load(dg.AssetKey("total"))[0] == 6
    assert not (tmp_path / "defs").exists()
