"""Incremental runs: an edited function marks exactly its asset and what is downstream as
changed, and the `on_code_change` automation re-materializes only those."""

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from orchestration import HamiltonTranslator, hamilton_assets

SOURCE = """
def source() -> int:
    return 1

def cleaned(source: int) -> int:
    return source + {increment}

def report(cleaned: int) -> str:
    return f"total={{cleaned}}"

def other(source: int) -> int:
    return source * 2
"""


def assets_for(make_module, increment: int) -> dg.AssetsDefinition:
    module = make_module(SOURCE.format(increment=increment), name="incremental_flow")
    return hamilton_assets(module, translator=HamiltonTranslator(automation="on_code_change"))


def stale(instance, assets: dg.AssetsDefinition) -> dict[str, StaleStatus]:
    defs = dg.Definitions(assets=[assets])
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    return {key.to_user_string(): resolver.get_status(key) for key in assets.keys}


def stale_keys(instance, assets) -> set[str]:
    return {key for key, status in stale(instance, assets).items() if status == StaleStatus.STALE}


def requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results if r.true_subset.size}


def materialized(instance, assets, keys) -> set[str]:
    run = dg.materialize([assets], instance=instance, selection=[dg.AssetKey(k) for k in sorted(keys)])
    assert run.success
    return {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}


def test_an_edited_function_re_materializes_only_itself_and_downstream(make_module, data_dir, instance):
    before = assets_for(make_module, 1)
    assert dg.materialize([before], instance=instance).success
    tick = dg.evaluate_automation_conditions(defs=[before], instance=instance)
    assert requested(tick) == set()
    assert set(stale(instance, before).values()) == {StaleStatus.FRESH}

    after = assets_for(make_module, 50)  # the same module with one function edited, reloaded

    # Dagster marks the edited asset (new code version); what is downstream is marked once the new
    # value exists. The automation needs no second tick: one run covers both.
    assert stale_keys(instance, after) == {"cleaned"}
    tick = dg.evaluate_automation_conditions(defs=[after], instance=instance, cursor=tick.cursor)
    assert requested(tick) == {"cleaned", "report"}
    assert materialized(instance, after, requested(tick)) == {"cleaned", "report"}

    assert stale_keys(instance, after) == set()
    tick = dg.evaluate_automation_conditions(defs=[after], instance=instance, cursor=tick.cursor)
    assert requested(tick) == set()  # "source" and "other" never re-ran


def test_the_downstream_selection_re_materializes_in_one_run(make_module, data_dir, instance):
    """The manual action: select the edited asset and its downstream (`cleaned*`)."""
    assert dg.materialize([assets_for(make_module, 1)], instance=instance).success
    after = assets_for(make_module, 50)
    selection = dg.AssetSelection.assets("cleaned").downstream()
    keys = {
        k.to_user_string() for k in selection.resolve(dg.Definitions(assets=[after]).resolve_asset_graph())
    }
    assert materialized(instance, after, keys) == {"cleaned", "report"}
    assert stale_keys(instance, after) == set()
