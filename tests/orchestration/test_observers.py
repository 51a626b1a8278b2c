"""The public observer protocol: what a `StepObserver` is told, on which thread, and what a broken
one costs (nothing but one warning in the run log)."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from orchestration import (
    CheckOutcome,
    DataflowError,
    Materialized,
    ProgressSettings,
    StepInfo,
    StepObserver,
    hamilton_assets,
    hamilton_assets_by_group,
)
from tests.conftest import step_failure

FLOW = '''
import time

import pandas as pd
from hamilton.function_modifiers import tag


def orders() -> pd.DataFrame:
    """Raw orders."""
    return pd.DataFrame({"amount": [1.0, 2.0, 3.0]})


def left(orders: pd.DataFrame) -> float:
    time.sleep(0.2)
    return float(orders["amount"].sum())


def right(orders: pd.DataFrame) -> float:
    time.sleep(0.2)
    return float(orders["amount"].max())


@tag(**{"dagster.group": "report"})
def report(left: float, right: float) -> str:
    if left < 0:
        raise ValueError("negative total")
    return f"{left}/{right}"
'''

PARTITIONED = """
def orders(day: str) -> float:
    return float(day[-2:])
"""


class Recording(StepObserver):
    """Writes down every hook as (hook, asset or None, thread name, step info)."""

    def __init__(self):
        self.calls: list[tuple[str, str | None, str, StepInfo]] = []
        self.materialized: dict[str, Materialized] = {}
        self.errors: dict[str, BaseException] = {}
        self.success: list[bool] = []

    def _note(self, hook: str, step: StepInfo, asset: str | None = None) -> None:
        self.calls.append((hook, asset, threading.current_thread().name, step))

    def hooks(self) -> list[str]:
        return [hook for hook, *_ in self.calls]

    def step_started(self, step):
        self._note("step_started", step)

    def asset_started(self, step, asset):
        self._note("asset_started", step, asset)

    def asset_running(self, step, asset, running_s):
        self._note("asset_running", step, asset)

    def asset_materialized(self, step, asset, materialized):
        self._note("asset_materialized", step, asset)
        self.materialized[asset] = materialized

    def asset_failed(self, step, asset, error):
        self._note("asset_failed", step, asset)
        self.errors[asset] = error

    def before_report(self, step):
        self._note("before_report", step)

    def step_finished(self, step, success):
        self._note("step_finished", step)
        self.success.append(success)


class Broken(StepObserver):
    def __init__(self):
        self.calls = 0

    def asset_materialized(self, step, asset, materialized):
        self.calls += 1
        raise RuntimeError(f"cannot follow {asset}")


def run_log(instance, run_id: str) -> list[str]:
    return [record.user_message for record in instance.all_logs(run_id)]


def test_an_observer_is_told_every_asset_in_order_on_the_steps_own_thread(make_module, data_dir, instance):
    recording = Recording()
    assets = hamilton_assets(make_module(FLOW), name="flow", observers=[recording], max_parallel_nodes=2)
    result = dg.materialize([assets], instance=instance)
    assert result.success

    hooks = recording.hooks()
    assert hooks[0] == "step_started" and hooks[-1] == "step_finished" and recording.success == [True]
    assert {a for h, a, *_ in recording.calls if h == "asset_materialized"} == {
        "orders",
        "left",
        "right",
        "report",
    }
    assert hooks.count("asset_started") == 4
    for asset in ("orders", "left", "right", "report"):  # started before materialized, once each
        started = [i for i, (h, a, *_) in enumerate(recording.calls) if (h, a) == ("asset_started", asset)]
        done = [i for i, (h, a, *_) in enumerate(recording.calls) if (h, a) == ("asset_materialized", asset)]
        assert len(started) == len(done) == 1 and started[0] < done[0]
    # Hamilton ran `left` and `right` in its pool, yet every hook came on the step's thread.
    assert {thread for *_, thread, _ in recording.calls} == {threading.current_thread().name}

    step = recording.calls[0][3]
    assert step.run_id == result.run_id and step.name == "flow"
    assert step.assets == ("orders", "left", "right", "report")
    assert step.keys["report"] == "report" and step.partitions == () and step.partition is None
    assert step.settings.store_location == data_dir / "assets" and step.context is not None
    assert not step.will_retry
    stored = recording.materialized["report"]
    assert stored.value == "6.0/3.0" and stored.stored.path.exists()
    assert set(stored.upstream_paths) == {"left", "right"}


def test_a_failing_observer_is_named_once_in_the_run_log_and_breaks_nothing(make_module, data_dir, instance):
    broken, recording = Broken(), Recording()
    assets = hamilton_assets(make_module(FLOW), name="flow", observers=[broken, recording])
    result = dg.materialize([assets], instance=instance)

    assert result.success
    assert broken.calls == 4  # called for every asset, although it failed each time
    assert len(recording.materialized) == 4  # the observer after it was still told
    said = [m for m in run_log(instance, result.run_id) if "Broken.asset_materialized" in m]
    assert len(said) == 1
    assert "RuntimeError: cannot follow" in said[0] and "goes on without it" in said[0]


def test_a_failed_asset_is_reported_with_its_error(make_module, data_dir, instance):
    recording = Recording()
    assets = hamilton_assets(make_module(FLOW.replace("if left < 0", "if left > 0")), observers=[recording])
    result = dg.materialize([assets], instance=instance, raise_on_error=False)

    assert not result.success and "negative total" in step_failure(result)
    assert isinstance(recording.errors["report"], ValueError)
    assert recording.success == [False] and recording.hooks()[-1] == "step_finished"


def test_one_observer_follows_every_group_step_by_name(make_module, data_dir, instance):
    recording = Recording()
    assets = hamilton_assets_by_group(make_module(FLOW), name="flow", observers=[recording])
    assert dg.materialize(assets, instance=instance).success

    names = {step.name for hook, _, _, step in recording.calls if hook == "step_started"}
    assert len(assets) == 2 and names == {group.node_def.name for group in assets}
    assert {step.name for hook, asset, _, step in recording.calls if asset == "report"} == {"flow__report"}


def test_each_partition_of_a_range_run_is_reported_with_its_key(make_module, data_dir, instance):
    recording = Recording()
    assets = hamilton_assets(
        make_module(PARTITIONED),
        partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),
        partition_input="day",
        backfill_policy=dg.BackfillPolicy.single_run(),
        observers=[recording],
    )
    days = ["2026-01-02", "2026-01-03"]
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    assert dg.materialize([assets], instance=instance, tags=tags).success

    reported = [step.partition for hook, _, _, step in recording.calls if hook == "asset_materialized"]
    assert reported == days
    step = recording.calls[0][3]
    assert step.partitions == tuple(days) and step.in_partition_range
    assert step.partition is None  # at step start, no partition is being computed yet


def test_a_slow_node_is_reported_running_with_how_long(make_module, data_dir, instance):
    recording = Recording()
    flow = "import time\n\ndef slow() -> int:\n    time.sleep(0.6)\n    return 1\n"
    assets = hamilton_assets(
        make_module(flow), observers=[recording], progress_settings=ProgressSettings(live_after_s=0.2)
    )
    started = time.monotonic()
    assert dg.materialize([assets], instance=instance).success
    assert time.monotonic() - started >= 0.6
    assert ("asset_running", "slow") in [(h, a) for h, a, *_ in recording.calls]


def test_check_outcomes_reach_observers_without_dagsters_types(make_module, data_dir, instance):
    recording = Recording()
    flow = (
        "import pandas as pd\nfrom hamilton.function_modifiers import check_output\n\n\n"
        '@check_output(range=(0.0, 1.0), importance="warn")\n'
        "def ratio() -> pd.Series:\n    return pd.Series([5.0])\n"
    )
    assert dg.materialize(
        [hamilton_assets(make_module(flow), observers=[recording])], instance=instance
    ).success
    [outcome] = recording.materialized["ratio"].checks
    assert outcome == CheckOutcome(
        name="range_validator", passed=False, blocking=False, description=outcome.description
    )
    assert "outside" in (outcome.description or "")


def test_an_observer_must_be_a_step_observer(make_module):
    class NotAnObserver:
        def step_started(self, step): ...

    with pytest.raises(DataflowError, match="is not a StepObserver.*subclass orchestration.StepObserver"):
        hamilton_assets(make_module(FLOW), observers=[NotAnObserver()])
