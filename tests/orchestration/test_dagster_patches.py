"""The fixes of Dagster 1.13's per-output costs: what they keep (the topological-order check, each
materialization's provenance), what they save (output keys computed once per step; in-step
parents' records fetched in batches), and the probes that tell when upstream no longer needs them."""

import inspect
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.execution.context.data_version_cache import DataVersionCache
from dagster._core.execution.context.system import StepExecutionContext

from orchestration.execution import dagster_patches
from orchestration.execution.dagster_patches import install_step_patches, is_affected_dagster_version

REPO = Path(__file__).resolve().parents[2]
PATCHED = [
    (StepExecutionContext, "get_output_asset_keys"),
    (DataVersionCache, "wipe_input_asset_version_info"),
    (DataVersionCache, "maybe_fetch_and_get_input_asset_version_info"),
]
NOT_COVERED = (
    f"dagster_patches does not cover Dagster {dg.__version__}: run the tests that probe unpatched "
    "Dagster (test_dagster_still_*) to decide whether to widen its version guard or remove it"
)


@pytest.fixture
def unpatched(monkeypatch):
    """Dagster's classes as they were before any patch; restored, with the module's flag, after the
    test, because the patches are process-wide."""
    for cls, name in PATCHED:
        monkeypatch.setattr(cls, name, inspect.unwrap(getattr(cls, name)))
    monkeypatch.setattr(dagster_patches, "_installed", False)


@pytest.fixture
def output_key_computations(monkeypatch, unpatched):
    """Dagster's own `get_output_asset_keys`, recorded as (step key, keys)."""
    original = StepExecutionContext.get_output_asset_keys
    computations = []

    def recorded(self):
        keys = original(self)
        computations.append((self.step.key, keys))
        return keys

    monkeypatch.setattr(StepExecutionContext, "get_output_asset_keys", recorded)
    return computations


def run_python(code: str) -> str:
    """Runs code in a fresh interpreter (no patch from this process) and returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_yielding_out_of_topological_order_still_fails(output_key_computations):
    assert install_step_patches(), NOT_COVERED

    @dg.multi_asset(specs=[dg.AssetSpec("up"), dg.AssetSpec("down", deps=["up"])])
    def out_of_order():
        yield dg.MaterializeResult(asset_key="down")
        yield dg.MaterializeResult(asset_key="up")

    with pytest.raises(DagsterInvariantViolationError, match="must yield them in topological order"):
        dg.materialize([out_of_order], instance=dg.DagsterInstance.ephemeral())
    assert len(output_key_computations) == 1  # the check of "up" used the cached keys


def test_a_step_computes_its_output_keys_once(output_key_computations):
    assert install_step_patches(), NOT_COVERED
    assert install_step_patches()
    assert not hasattr(StepExecutionContext.get_output_asset_keys.__wrapped__, "__wrapped__")  # wrapped once

    keys = [f"a{i}" for i in range(300)]
    specs = [dg.AssetSpec(key, deps=[keys[i - 1]] if i else []) for i, key in enumerate(keys)]

    @dg.multi_asset(specs=specs)
    def chain():
        for key in keys:
            yield dg.MaterializeResult(asset_key=key)

    result = dg.materialize([chain], instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert len(result.get_asset_materialization_events()) == len(keys)
    assert [step for step, _ in output_key_computations] == ["chain"]
    assert output_key_computations[0][1] == {dg.AssetKey(key) for key in keys}


@pytest.mark.services  # a fresh interpreter, without this process's patches
def test_dagster_still_recomputes_output_keys_per_output():
    """Tells when upstream no longer needs the patch: run without it, in a fresh process."""
    n = 200
    probe = json.loads(
        run_python(f"""
        import json
        import dagster as dg

        evaluations = 0
        keys_property = dg.AssetsDefinition.asset_and_check_keys
        if isinstance(keys_property, property):
            def counting(self):
                global evaluations
                evaluations += 1
                return keys_property.fget(self)

            dg.AssetsDefinition.asset_and_check_keys = property(counting)

        keys = [f"a{{i}}" for i in range({n})]

        @dg.multi_asset(specs=[dg.AssetSpec(key) for key in keys])
        def many():
            for key in keys:
                yield dg.MaterializeResult(asset_key=key)

        assert dg.materialize([many], instance=dg.DagsterInstance.ephemeral()).success
        counted = isinstance(keys_property, property)
        print(json.dumps({{"version": dg.__version__, "evaluations": evaluations if counted else None}}))
        """)
    )
    assert probe["evaluations"] is not None and probe["evaluations"] >= n * n, (
        f"Dagster {probe['version']} no longer builds AssetsDefinition.asset_and_check_keys ~N² "
        f"times in one step of N outputs ({probe['evaluations']} times for N={n}): the quadratic "
        "path looks fixed upstream. Re-measure a multi-asset of 1,000 outputs without the patch; "
        "then remove orchestration.execution.dagster_patches, or restrict its version guard to older "
        "versions (docs/architecture.md, Dagster's per-output cost)."
    )


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("1.13.0", True),
        ("1.13.27", True),
        ("1.12.9", False),
        ("1.14.0", False),
        ("2.13.0", False),
        ("1!0+dev", False),
    ],
)
def test_only_dagster_1_13_is_affected(version, affected):
    assert is_affected_dagster_version(version) is affected


def test_an_unknown_dagster_version_is_left_alone(monkeypatch, unpatched, caplog):
    before = [getattr(cls, name) for cls, name in PATCHED]
    monkeypatch.setattr(dg, "__version__", "1.14.0")

    with caplog.at_level(logging.DEBUG, logger=dagster_patches.__name__):
        assert install_step_patches() is False

    assert [getattr(cls, name) for cls, name in PATCHED] == before
    assert "1.14.0" in caplog.text


@pytest.mark.services  # a fresh interpreter, without this process's patches
def test_importing_the_module_patches_nothing():
    run_python("""
        from dagster._core.execution.context.data_version_cache import DataVersionCache
        from dagster._core.execution.context.system import StepExecutionContext

        methods = [
            StepExecutionContext.get_output_asset_keys,
            DataVersionCache.wipe_input_asset_version_info,
            DataVersionCache.maybe_fetch_and_get_input_asset_version_info,
        ]
        from orchestration.execution import dagster_patches

        assert methods == [
            StepExecutionContext.get_output_asset_keys,
            DataVersionCache.wipe_input_asset_version_info,
            DataVersionCache.maybe_fetch_and_get_input_asset_version_info,
        ]
        assert not dagster_patches._installed
        """)


# In-step provenance ---------------------------------------------------------------------------

LAYERS, WIDTH = 8, 10
LAYERED = [f"n{layer}_{i}" for layer in range(LAYERS) for i in range(WIDTH)]


def layered_parents(key: str) -> list[str]:
    """Layers of 10; each node reads one or two nodes of the layer before (as bench_core's)."""
    layer, i = (int(part) for part in key[1:].split("_"))
    if layer == 0:
        return []
    return sorted({f"n{layer - 1}_{i}", f"n{layer - 1}_{(i * 7 + 3) % WIDTH}"})


@dg.multi_asset(
    specs=[dg.AssetSpec(key, deps=layered_parents(key)) for key in LAYERED],
    check_specs=[dg.AssetCheckSpec("positive", asset=key) for key in LAYERED[::7]],
)
def layered():
    checked = {spec.asset_key.path[0] for spec in layered.check_specs}
    for key in LAYERED:
        yield dg.MaterializeResult(asset_key=key)
        if key in checked:
            yield dg.AssetCheckResult(asset_key=key, check_name="positive", passed=True)


@pytest.fixture
def record_queries(monkeypatch):
    """The number of `get_asset_records` queries Dagster makes, counted at the instance."""
    queries = []
    original = dg.DagsterInstance.get_asset_records

    def counted(self, asset_keys=None):
        queries.append(list(asset_keys or []))
        return original(self, asset_keys)

    monkeypatch.setattr(dg.DagsterInstance, "get_asset_records", counted)
    return queries


def provenance_errors(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Where a materialization of `run_id` does not point at its parents' events of the same run.

    Every parent is materialized earlier in the same step, so the tags Dagster writes must name
    exactly that event: a record fetched before the parent's new event was stored would name the
    previous run's.
    """
    latest = {}
    for key in LAYERED:
        record = instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
        assert record.run_id == run_id
        latest[key] = record
    errors = []
    for key in LAYERED:
        tags = latest[key].asset_materialization.tags
        for parent in layered_parents(key):
            pointer = tags.get(f"dagster/input_event_pointer/{parent}")
            version = tags.get(f"dagster/input_data_version/{parent}")
            if pointer != str(latest[parent].storage_id):
                errors.append(f"{key} points at {pointer} for {parent}, not {latest[parent].storage_id}")
            if version != latest[parent].asset_materialization.tags["dagster/data_version"]:
                errors.append(f"{key} has data version {version} for {parent}")
    return errors


def check_targets(instance: dg.DagsterInstance, run_id: str) -> dict[str, int | None]:
    """The materialization each check evaluation of the run names as its target."""
    targets = {}
    for spec in layered.check_specs:
        record = instance.event_log_storage.get_asset_check_execution_history(spec.key, limit=1)[0]
        assert record.run_id == run_id
        evaluation = record.event.dagster_event.event_specific_data
        targets[spec.asset_key.path[0]] = evaluation.target_materialization_data.storage_id
    return targets


def test_in_step_parents_are_fetched_in_batches_with_the_same_provenance(unpatched, record_queries):
    assert install_step_patches(), NOT_COVERED
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # the second run has older events to fetch by mistake
        result = dg.materialize([layered], instance=instance)
        assert result.success

    assert provenance_errors(instance, result.run_id) == []
    targets = check_targets(instance, result.run_id)
    assert targets == {
        key: instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0].storage_id
        for key in targets
    }
    in_step_parents = {parent for key in LAYERED for parent in layered_parents(key)}
    second_run = record_queries[len(record_queries) // 2 :]
    fetched = [key for query in second_run for key in query]
    # Each in-step parent once (a check's own target is looked up too), in far fewer queries
    # than one per parent; unpatched Dagster makes one per parent (the test below).
    assert {dg.AssetKey(key) for key in in_step_parents} <= set(fetched)
    assert len(second_run) <= LAYERS + len(layered.check_specs) + 1
    assert len(second_run) < len(in_step_parents) / 3


@pytest.mark.services  # a fresh interpreter, without this process's patches
def test_dagster_still_fetches_each_in_step_parent_alone():
    """Tells when upstream batches in-step provenance itself: run without the patch, in a fresh
    process, and count `get_asset_records` queries."""
    probe = json.loads(
        run_python("""
        import json
        import dagster as dg

        from tests.orchestration.test_dagster_patches import LAYERED, layered, layered_parents

        queries = []
        original = dg.DagsterInstance.get_asset_records

        def counted(self, asset_keys=None):
            queries.append(len(asset_keys or []))
            return original(self, asset_keys)

        dg.DagsterInstance.get_asset_records = counted
        assert dg.materialize([layered], instance=dg.DagsterInstance.ephemeral()).success
        in_step_parents = {parent for key in LAYERED for parent in layered_parents(key)}
        print(json.dumps({
            "version": dg.__version__,
            "single_key_queries": queries.count(1),
            "in_step_parents": len(in_step_parents),
        }))
        """)
    )
    assert probe["single_key_queries"] >= probe["in_step_parents"], (
        f"Dagster {probe['version']} no longer fetches each parent materialized in the same step "
        f"alone ({probe['single_key_queries']} single-key get_asset_records queries for "
        f"{probe['in_step_parents']} in-step parents): re-measure bench_core without "
        "_fetching_in_batches, then remove it or restrict its version guard (docs/architecture.md, "
        "one provenance query per parent in the same step)."
    )


def test_without_the_patch_the_same_runs_have_the_same_provenance(unpatched):
    """The invariant the batched test relies on holds for Dagster's own code too."""
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        result = dg.materialize([layered], instance=instance)
    assert provenance_errors(instance, result.run_id) == []
