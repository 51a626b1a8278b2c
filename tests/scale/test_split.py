"""A dataflow split into one step per asset group: independent groups run at the same time in
separate processes, and a downstream group reads what they stored in the same run."""

from collections import Counter, defaultdict

import dagster as dg
import pytest
from hamilton import driver

from orchestration import DataflowError, ValueStore
from orchestration.assets import hamilton_assets_by_group
from tests.lineage.test_events import read_events
from tests.scale import grouped_flow, split_defs

ASSETS = ["left_numbers", "left_total", "right_numbers", "right_total", "both", "report"]
SIZE = {"config": {"size": 6}}
RUN_CONFIG = {"ops": {"grouped_flow__left": SIZE, "grouped_flow__right": SIZE}}


def plain_hamilton() -> dict:
    dr = driver.Builder().with_modules(grouped_flow).build()
    return dr.execute(ASSETS, inputs={"size": 6})


def assert_values_match_hamilton(data_dir) -> None:
    store = ValueStore(data_dir / "assets")
    for name, expected in plain_hamilton().items():
        stored = store.read(dg.AssetKey(name))
        if isinstance(expected, (float, dict)):
            assert stored == expected, name
        elif hasattr(expected, "columns"):
            assert stored.reset_index(drop=True).equals(expected.reset_index(drop=True)), name
        else:
            assert stored.tolist() == expected.tolist(), name


def step_times(instance, run_id) -> dict[str, tuple[float, float, int]]:
    """step key -> (start, end, pid of the step's process)."""
    started, ended = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = (entry.timestamp, event.pid)
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ended[event.step_key] = entry.timestamp
    return {key: (started[key][0], ended[key], started[key][1]) for key in ended}


def test_groups_become_multi_assets_with_their_own_specs_checks_deps_and_config():
    by_name = {assets.node_def.name: assets for assets in split_defs.defs.assets}
    assert list(by_name) == ["grouped_flow__left", "grouped_flow__right", "grouped_flow__combined"]
    combined = by_name["grouped_flow__combined"]
    assert {k.to_user_string() for k in combined.keys} == {"both", "report"}
    assert {k.to_user_string() for k in combined.dependency_keys} >= {
        "left_numbers",
        "left_total",
        "right_total",
    }
    assert [c.name for c in by_name["grouped_flow__right"].check_keys] == ["range_validator"]
    assert not by_name["grouped_flow__left"].check_keys
    inputs = {name: set(assets.op.config_schema.config_type.fields) for name, assets in by_name.items()}
    assert inputs == {
        "grouped_flow__left": {"size"},
        "grouped_flow__right": {"size"},
        "grouped_flow__combined": set(),
    }


@pytest.mark.services  # the multiprocess executor: a process per step
def test_independent_groups_overlap_in_separate_processes_and_values_match_hamilton(data_dir, instance):
    result = dg.execute_job(
        dg.reconstructable(split_defs.multiprocess_job),
        instance,
        run_config={**RUN_CONFIG, "execution": {"config": {"max_concurrent": 3}}},
    )

    assert result.success
    steps = step_times(instance, result.run_id)
    left, right, combined = (steps[f"grouped_flow__{g}"] for g in ("left", "right", "combined"))
    assert left[0] < right[1] and right[0] < left[1], f"left and right did not overlap: {steps}"
    assert combined[0] >= max(left[1], right[1])  # the joining group waits for both
    assert len({left[2], right[2], combined[2]}) == 3  # a process per step

    assert_values_match_hamilton(data_dir)
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }
    assert checks == {("right_total", "range_validator"): True}
    logs = [
        e.user_message for e in instance.all_logs(result.run_id) if e.step_key == "grouped_flow__combined"
    ]
    assert any(m.startswith("Loaded from storage instead of recomputing: left_numbers, ") for m in logs)

    # several steps, one lineage run: exactly one START and one terminal event per runId
    events = read_events(data_dir)
    by_run = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event["eventType"])
    assert len(by_run) == 1 + len(ASSETS)
    for run_id, types in by_run.items():
        assert types[0] == "START" and Counter(types) == {"START": 1, "COMPLETE": 1}, (run_id, types)


def test_in_process_a_downstream_group_reads_what_upstream_groups_stored(data_dir, instance):
    assets = hamilton_assets_by_group(grouped_flow)
    result = dg.materialize(assets, instance=instance, run_config=RUN_CONFIG)
    assert result.success
    assert_values_match_hamilton(data_dir)


CIRCLE = """
from hamilton.function_modifiers import tag


@tag(**{"dagster.group": "a"})
def first() -> int:
    return 1


@tag(**{"dagster.group": "b"})
def second(first: int) -> int:
    return first + 1


@tag(**{"dagster.group": "a"})
def third(second: int) -> int:
    return second + 1
"""


def test_groups_that_depend_on_each_other_in_a_circle_are_refused_naming_the_nodes(make_module):
    with pytest.raises(DataflowError) as error:
        hamilton_assets_by_group(make_module(CIRCLE, name="circle"))
    message = str(error.value)
    assert "Asset groups " in message and "of dataflow 'circle' depend on each other in a circle" in message
    assert "first (a) → second (b)" in message and "second (b) → third (a)" in message
    assert "dagster.group" in message and "hamilton_assets()" in message
