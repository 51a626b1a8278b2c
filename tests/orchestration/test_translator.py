"""The translator: which Hamilton nodes become assets, and what their specs say."""

import dagster as dg
import pytest
from hamilton import driver

from orchestration import HamiltonTranslator, hamilton_assets

FLOW = '''
import pandas as pd
from hamilton.function_modifiers import check_output, extract_columns, extract_fields, tag


def orders(path: str, limit: int = 10) -> pd.DataFrame:
    """Raw orders as exported."""
    return pd.DataFrame({"qty": [1, 2], "price": [3.0, 4.0]}).head(limit)


@extract_columns("qty", "price")
def clean_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders with usable quantities and prices."""
    return orders


@check_output(range=(0.0, 1000.0), importance="fail")
def revenue(qty: pd.Series, price: pd.Series) -> pd.Series:
    """Quantity times price."""
    return qty * price


@check_output(range=(0.0, 1.0), importance="warn")
def share(revenue: pd.Series) -> float:
    """Share of the first order."""
    return float(revenue.iloc[0] / revenue.sum())


@extract_fields({"low": float, "high": float})
def bounds(revenue: pd.Series) -> dict:
    """Lowest and highest revenue."""
    return {"low": float(revenue.min()), "high": float(revenue.max())}


@tag(**{"dagster.asset_key": "reports/summary", "dagster.group": "reporting",
        "dagster.owners": "team:analytics", "domain": "sales"})
def summary(high: float, low: float, share: float) -> dict:
    """Headline numbers."""
    return {"spread": high - low, "share": share}
'''


@pytest.fixture
def flow(make_module):
    return make_module(FLOW, name="orders_flow")


def specs_by_key(assets_def: dg.AssetsDefinition) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for spec in assets_def.specs}


def test_every_user_function_is_an_asset_and_decorator_nodes_are_not(flow):
    specs = specs_by_key(hamilton_assets(flow))
    assert sorted(specs) == ["bounds", "clean_orders", "orders", "reports/summary", "revenue", "share"]


def test_dependencies_go_through_columns_fields_and_check_internals(flow):
    specs = specs_by_key(hamilton_assets(flow))

    def deps(key):
        return sorted(dep.asset_key.to_user_string() for dep in specs[key].deps)

    assert deps("orders") == []
    assert deps("clean_orders") == ["orders"]
    assert deps("revenue") == ["clean_orders"]  # through the qty/price columns and revenue_raw
    assert deps("share") == ["revenue"]
    assert deps("bounds") == ["revenue"]
    assert deps("reports/summary") == ["bounds", "share"]  # through the high/low fields


def test_check_output_validators_become_asset_checks_blocking_when_fail(flow):
    checks = {(c.asset_key.to_user_string(), c.name): c for c in hamilton_assets(flow).check_specs}
    assert set(checks) == {("revenue", "range_validator"), ("share", "range_validator")}
    assert checks[("revenue", "range_validator")].blocking is True
    assert checks[("share", "range_validator")].blocking is False


def test_default_spec_fields(flow):
    spec = specs_by_key(hamilton_assets(flow))["clean_orders"]
    hamilton_node = {
        n.name: n for n in driver.Builder().with_modules(flow).build().list_available_variables()
    }["clean_orders"]
    assert spec.description == "Orders with usable quantities and prices."
    assert spec.group_name == "orders_flow"
    assert spec.code_version == hamilton_node.version
    assert "hamilton" in spec.kinds and "pandas" in spec.kinds
    assert spec.metadata["hamilton/return_type"] == "DataFrame"
    reference = spec.metadata["dagster/code_references"].code_references[0]
    assert reference.file_path == flow.__file__
    assert reference.line_number == flow.clean_orders.__code__.co_firstlineno
    schema = spec.metadata["dagster/column_schema"]
    assert [column.name for column in schema.columns] == ["qty", "price"]


def test_dagster_tags_override_key_group_owners_and_plain_tags_pass_through(flow):
    spec = specs_by_key(hamilton_assets(flow))["reports/summary"]
    assert spec.group_name == "reporting"
    assert spec.owners == ["team:analytics"]
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")} == {"domain": "sales"}


def test_code_version_changes_with_the_function_body_only(make_module):
    base = "def a() -> int:\n    '''Doc one.'''\n    return 1\n"
    same = "def a() -> int:\n    '''Doc two.'''\n    # a comment\n    return 1\n"
    changed = "def a() -> int:\n    '''Doc one.'''\n    return 2\n"
    versions = [
        hamilton_assets(make_module(source)).specs_by_key[dg.AssetKey("a")].code_version
        for source in (base, same, changed)
    ]
    assert versions[0] == versions[1] != versions[2]


def test_custom_translator_getters_compose_into_the_spec(flow):
    class Translator(HamiltonTranslator):
        def get_group_name(self, node):
            return "everything"

        def get_kinds(self, node):
            return {"hamilton", "custom"}

    specs = specs_by_key(hamilton_assets(flow, translator=Translator(key_prefix="warehouse")))
    assert "warehouse/orders" in specs
    assert {spec.group_name for spec in specs.values()} == {"everything"}
    assert specs["warehouse/revenue"].kinds == {"hamilton", "custom"}
    assert [d.asset_key.to_user_string() for d in specs["warehouse/clean_orders"].deps] == [
        "warehouse/orders"
    ]


def test_external_inputs_become_typed_run_config_with_defaults(flow):
    fields = hamilton_assets(flow, config={"path": "/tmp/orders.csv"}).op.config_schema.config_type.fields
    assert set(fields) == {"path", "limit"}
    assert fields["path"].default_value == "/tmp/orders.csv"
    assert fields["limit"].default_value == 10
    assert fields["limit"].config_type.given_name == "Int"


def test_input_named_after_an_upstream_asset_is_a_dependency(make_module):
    upstream = make_module("def daily_metrics() -> dict:\n    return {'revenue': 1.0}\n")
    downstream = make_module(
        "def forecast(daily_metrics: dict) -> float:\n    return daily_metrics['revenue'] * 2\n"
    )
    upstream_assets = hamilton_assets(upstream)
    downstream_assets = hamilton_assets(downstream, upstream_assets=[upstream_assets])
    spec = downstream_assets.specs_by_key[dg.AssetKey("forecast")]
    assert [d.asset_key for d in spec.deps] == [dg.AssetKey("daily_metrics")]
    assert "daily_metrics" not in downstream_assets.op.config_schema.config_type.fields


@pytest.mark.services  # `dagster definitions validate`
def test_the_shipped_definitions_validate_in_a_subprocess(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **__import__("os").environ,
        "PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_freshness_tags_become_a_freshness_policy(make_module):
    flow = make_module(
        "from hamilton.function_modifiers import tag\n"
        "@tag(**{'dagster.freshness_hours': '30', 'dagster.freshness_warn_hours': '26'})\n"
        "def report() -> str:\n    return 'ok'\n"
        "def other() -> int:\n    return 1\n"
    )
    from datetime import timedelta

    specs = hamilton_assets(flow).specs_by_key
    policy = specs[dg.AssetKey("report")].freshness_policy
    assert policy.fail_window.to_timedelta() == timedelta(hours=30)
    assert policy.warn_window.to_timedelta() == timedelta(hours=26)
    assert specs[dg.AssetKey("other")].freshness_policy is None


def test_every_output_of_parameterize_is_an_asset(make_module):
    flow = make_module('''
from hamilton.function_modifiers import parameterize, source, value


def base() -> int:
    """The base."""
    return 10


@parameterize(
    plus_one={"amount": value(1)},
    plus_two={"amount": value(2)},
)
def shifted(base: int, amount: int) -> int:
    """base + amount."""
    return base + amount


def total(plus_one: int, plus_two: int) -> int:
    """Both together."""
    return plus_one + plus_two
''')
    specs = specs_by_key(hamilton_assets(flow))
    assert sorted(specs) == ["base", "plus_one", "plus_two", "total"]
    assert [d.asset_key.to_user_string() for d in specs["plus_one"].deps] == ["base"]
    assert sorted(d.asset_key.to_user_string() for d in specs["total"].deps) == ["plus_one", "plus_two"]


def test_loading_keeps_the_garbage_collector_on_and_the_process_frozen_objects_frozen(flow):
    import gc

    gc.freeze()  # as a pre-fork server does: the load must not release these
    frozen = gc.get_freeze_count()
    try:
        hamilton_assets(flow)
        assert gc.isenabled() and 0 < gc.get_freeze_count() <= frozen  # fewer: some were freed
    finally:
        gc.unfreeze()
    hamilton_assets(flow)
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_config_value_for_an_input_is_its_default_and_other_config_still_selects_functions(
    make_module, data_dir, instance
):
    flow = make_module("""
from hamilton.function_modifiers import config


def raw(path: str) -> str:
    return path


@config.when(mode="upper")
def shown__upper(raw: str) -> str:
    return raw.upper()


@config.when(mode="lower")
def shown__lower(raw: str) -> str:
    return raw.lower()
""")
    assets = hamilton_assets(flow, config={"path": "/data/In.csv", "mode": "upper"})
    assert sorted(key.to_user_string() for key in assets.keys) == ["raw", "shown"]
    fields = assets.op.config_schema.config_type.fields
    assert set(fields) == {"path"} and fields["path"].default_value == "/data/In.csv"
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    assert dg.materialize([assets], instance=instance, run_config=quiet).success
