"""The per-step cache of Dagster's output asset keys: what it keeps (the topological-order check),
what it saves (one computation per step instead of one per output), and when it can go."""

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
from dagster._core.execution.context.system import StepExecutionContext

from orchestration import dagster_patches
from orchestration.dagster_patches import install_output_keys_cache, is_affected_dagster_version

REPO = Path(__file__).resolve().parents[2]
NOT_COVERED = (
    f"dagster_patches does not cover Dagster {dg.__version__}: run "
    "test_dagster_still_recomputes_output_keys_per_output to decide whether to widen its "
    "version guard or remove it"
)


@pytest.fixture
def output_key_computations(monkeypatch):
    """Dagster's own `get_output_asset_keys`, unpatched and recorded as (step key, keys).

    The patch is process-wide: the class and the module's flag are restored after the test.
    """
    original = inspect.unwrap(StepExecutionContext.get_output_asset_keys)
    computations = []

    def recorded(self):
        keys = original(self)
        computations.append((self.step.key, keys))
        return keys

    monkeypatch.setattr(StepExecutionContext, "get_output_asset_keys", recorded)
    monkeypatch.setattr(dagster_patches, "_installed", False)
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
    assert install_output_keys_cache(), NOT_COVERED

    @dg.multi_asset(specs=[dg.AssetSpec("up"), dg.AssetSpec("down", deps=["up"])])
    def out_of_order():
        yield dg.MaterializeResult(asset_key="down")
        yield dg.MaterializeResult(asset_key="up")

    with pytest.raises(DagsterInvariantViolationError, match="must yield them in topological order"):
        dg.materialize([out_of_order], instance=dg.DagsterInstance.ephemeral())
    assert len(output_key_computations) == 1  # the check of "up" used the cached keys


def test_a_step_computes_its_output_keys_once(output_key_computations):
    assert install_output_keys_cache(), NOT_COVERED
    assert install_output_keys_cache()
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
        "then remove orchestration.dagster_patches, or restrict its version guard to older "
        "versions (docs/architecture.md, Dagster's per-output cost)."
    )


@pytest.mark.parametrize(
    ("version", "affected"),
    [("1.13.0", True), ("1.13.27", True), ("1.12.9", False), ("1.14.0", False), ("2.13.0", False), ("1!0+dev", False)],
)
def test_only_dagster_1_13_is_affected(version, affected):
    assert is_affected_dagster_version(version) is affected


def test_an_unknown_dagster_version_is_left_alone(monkeypatch, caplog):
    before = StepExecutionContext.get_output_asset_keys
    monkeypatch.setattr(dg, "__version__", "1.14.0")
    monkeypatch.setattr(dagster_patches, "_installed", False)

    with caplog.at_level(logging.DEBUG, logger=dagster_patches.__name__):
        assert install_output_keys_cache() is False

    assert StepExecutionContext.get_output_asset_keys is before
    assert "1.14.0" in caplog.text


def test_importing_the_module_patches_nothing():
    run_python("""
        from dagster._core.execution.context.system import StepExecutionContext

        before = StepExecutionContext.get_output_asset_keys
        from orchestration import dagster_patches

        assert StepExecutionContext.get_output_asset_keys is before
        assert not dagster_patches._installed
        """)
