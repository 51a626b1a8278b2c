"""`ProgressAdapter` on a plain Hamilton driver: the Dagster path's callbacks and words, off the
driver's thread, never failing it; and importing it does not import Dagster."""

import threading

import pytest
from hamilton import driver

import orchestration
from orchestration import ProgressAdapter

FLOW = """
import pandas as pd


def source(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


def doubled(source: pd.DataFrame) -> pd.DataFrame:
    return source * 2


def broken(doubled: pd.DataFrame) -> int:
    raise ValueError("broken on purpose")
"""


def test_each_node_is_announced_as_in_dagster_from_another_thread(make_module):
    flow = make_module(FLOW)
    seen, threads = [], set()

    def callback(step, percent, message):
        threads.add(threading.current_thread().name)
        seen.append((step, round(percent), message))

    dr = driver.Builder().with_modules(flow).with_adapters(ProgressAdapter([callback])).build()
    assert dr.execute(["doubled"], inputs={"rows": 3})["doubled"]["x"].tolist() == [0, 2, 4]
    assert [(step, percent) for step, percent, _ in seen] == [
        ("source", 0),
        ("source", 50),
        ("doubled", 50),
        ("doubled", 100),
    ]
    assert seen[0][2] == "Executing source [0/2 0%]"
    assert seen[-1][2].startswith("[2/2 100%] doubled done in ") and "(rows=3)" in seen[-1][2]
    assert threads == {"progress-adapter"}  # never the driver's thread


def test_a_failing_node_is_reported_and_a_failing_callback_never_fails_the_driver(make_module):
    flow = make_module(FLOW)
    seen = []

    def broken_callback(step, percent, message):
        raise ConnectionError("the notifier is down")

    adapter = ProgressAdapter([broken_callback, lambda *update: seen.append(update)])
    dr = driver.Builder().with_modules(flow).with_adapters(adapter).build()
    assert dr.execute(["doubled"])["doubled"]["x"].tolist() == [0, 2, 4, 6]  # the driver goes on
    with pytest.raises(ValueError, match="broken on purpose"):
        dr.execute(["broken"])
    assert seen[-1][2] == "broken failed: ValueError: broken on purpose"
    with pytest.raises(ValueError, match="wait_s must be above 0"):
        ProgressAdapter([], wait_s=0)


EXPORTED = {name: getattr(orchestration, name) for name in orchestration.__all__}  # imported at collection


def test_the_package_exports_every_name_it_lists():
    assert sorted(orchestration.__all__) == sorted(orchestration._HOMES)
    assert set(orchestration.__all__) <= set(dir(orchestration))
    assert all(value.__name__ == name for name, value in EXPORTED.items())
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        orchestration.nothing  # noqa: B018
