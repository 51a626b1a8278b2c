"""Bad dataflows fail at definitions load with one message naming the node and the fix."""

import sys

import pytest

from orchestration import DataflowError, hamilton_assets
from orchestration.dataflow import max_chain_depth
from tests.conftest import step_failure

LOWERED_RECURSION_LIMIT = 400


def test_missing_dependency_names_the_node_and_the_input(make_module):
    flow = make_module(
        "import pandas as pd\n"
        "def report(sales_frame: pd.DataFrame) -> str:\n    return str(len(sales_frame))\n"
    )
    with pytest.raises(DataflowError) as error:
        hamilton_assets(flow)
    message = str(error.value)
    assert "'report'" in message and "'sales_frame'" in message
    assert "add a function named 'sales_frame'" in message


def test_producer_consumer_type_mismatch(make_module):
    flow = make_module("def count() -> int:\n    return 1\ndef label(count: str) -> str:\n    return count\n")
    with pytest.raises(DataflowError) as error:
        hamilton_assets(flow)
    message = str(error.value)
    assert "count" in message and "Fix:" in message


def test_duplicate_function_across_modules(make_module):
    first = make_module("def total() -> int:\n    return 1\n")
    second = make_module("def total() -> int:\n    return 2\n")
    with pytest.raises(DataflowError) as error:
        hamilton_assets(first, second)
    assert "total" in str(error.value)


def test_duplicate_asset_keys_from_tags(make_module):
    flow = make_module(
        "from hamilton.function_modifiers import tag\n"
        "@tag(**{'dagster.asset_key': 'shared/key'})\n"
        "def a() -> int:\n    return 1\n"
        "@tag(**{'dagster.asset_key': 'shared/key'})\n"
        "def b() -> int:\n    return 2\n"
    )
    with pytest.raises(DataflowError) as error:
        hamilton_assets(flow)
    message = str(error.value)
    assert "'a'" in message and "'b'" in message and "shared/key" in message


def test_invalid_key_characters(make_module):
    flow = make_module(
        "from hamilton.function_modifiers import tag\n"
        "@tag(**{'dagster.asset_key': 'sales report!'})\n"
        "def a() -> int:\n    return 1\n"
    )
    with pytest.raises(DataflowError) as error:
        hamilton_assets(flow)
    assert "'a'" in str(error.value) and "sales report!" in str(error.value)


def test_chain_deeper_than_the_recursion_limit_is_refused_at_load(make_module):
    depth = max_chain_depth() + 5
    source = "def n0() -> int:\n    return 0\n" + "".join(
        f"def n{i}(n{i - 1}: int) -> int:\n    return n{i - 1} + 1\n" for i in range(1, depth)
    )
    with pytest.raises(DataflowError) as error:
        hamilton_assets(make_module(source))
    assert f"'n{depth - 1}'" in str(error.value) and f"{depth} nodes deep" in str(error.value)


def test_chain_at_the_limit_loads_and_runs(make_module, data_dir, instance):
    import dagster as dg

    # Under a lower recursion limit the chain is shorter (the default limit's 850 nodes take ~25 s
    # to run twice); the depth is derived from the limit in force, so the property is the same.
    real_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(LOWERED_RECURSION_LIMIT)
    try:
        depth = max_chain_depth()
        source = "def n0() -> int:\n    return 0\n" + "".join(
            f"def n{i}(n{i - 1}: int) -> int:\n    return n{i - 1} + 1\n" for i in range(1, depth)
        )
        assets = hamilton_assets(make_module(source))
        result = dg.materialize(
            [assets], instance=instance, selection=[f"n{depth - 1}"], raise_on_error=False
        )
        # n{depth-2} was never stored, so the run must say which asset is missing, not overflow.
        assert not result.success
        assert f"Asset n{depth - 2} has never been materialized" in step_failure(result)
        assert dg.materialize([assets], instance=instance).success
    finally:
        sys.setrecursionlimit(real_limit)
