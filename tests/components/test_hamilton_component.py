"""`HamiltonComponent` loaded from a defs.yaml in a sandboxed defs folder, in this process: every
attribute reaches the assets, `translation` is applied to keys and dependencies alike, and bad
YAML gets one error naming the file and the field. (`test_dg_cli.py` drives the real `dg`.)"""

import contextlib
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox
from hamilton.graph_types import HamiltonNode

from orchestration import HamiltonComponent, HamiltonTranslator, ValueStore
from tests.components import plugins

FLOW = "tests.components.orders_flow"


@contextlib.contextmanager
def loaded(attributes: str, extra: str = ""):
    """The component and its definitions from a defs.yaml with these attributes (YAML text)."""
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "orders"
        folder.mkdir()
        body = textwrap.indent(textwrap.dedent(attributes).strip(), "  ")
        (folder / "defs.yaml").write_text(f"type: {TYPE}\nattributes:\n{body}\n{textwrap.dedent(extra)}")
        with sandbox.load_component_and_build_defs(defs_path=folder) as (component, defs):
            yield component, defs


TYPE = "orchestration.HamiltonComponent"


def load_error(attributes: str) -> str:
    with pytest.raises(Exception) as raised, loaded(attributes):
        pass
    return "\n".join(_chain(raised.value))


def _chain(error: BaseException | None) -> list[str]:
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return messages


def _own(tags: dict[str, str]) -> dict[str, str]:
    """Tags without Dagster's kind tags."""
    return {key: value for key, value in tags.items() if not key.startswith("dagster/kind/")}


def spec_of(defs: dg.Definitions, key: str) -> dg.AssetSpec:
    return next(
        spec for spec in defs.resolve_all_asset_specs() if spec.key == dg.AssetKey.from_user_string(key)
    )


def test_the_issues_example_prefixes_keys_once_and_renders_env_templates(monkeypatch, data_dir):
    monkeypatch.setenv("REGION", "apac")
    attributes = f"""
        modules: [{FLOW}]
        config: {{region: "{{{{ env('REGION', 'emea') }}}}"}}
        translation: {{key_prefix: orders, owners: ["team:analytics"]}}
    """
    with loaded(attributes) as (component, defs):
        keys = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
        assert set(keys) == {"orders/orders", "orders/total", "orders/report"}
        assert {dep.asset_key.to_user_string() for dep in keys["orders/report"].deps} == {"orders/total"}
        assert all(spec.owners == ["team:analytics"] for spec in keys.values())
        assert component.config == {"region": "apac"}
        assets = defs.resolve_assets_def(dg.AssetKey(["orders", "report"]))
        assert dg.materialize([assets]).success
    assert ValueStore(data_dir / "assets").read(dg.AssetKey(["orders", "report"])) == "apac: 6.00"


def test_translation_templates_each_node_and_merges_tags_and_metadata():
    attributes = f"""
        modules: [{FLOW}]
        config: {{region: emea}}
        translation:
          key: "{{{{ node.module.split('.')[-1] }}}}/{{{{ node.name }}}}"
          description: "{{{{ node.documentation }}}} ({{{{ node.return_type }}}})"
          tags: {{tier: "{{{{ 'gold' if node.name == 'report' else 'silver' }}}}"}}
          metadata: {{owner_team: "{{{{ node.tags.get('team', 'none') }}}}"}}
    """
    with loaded(attributes) as (_, defs):
        report = spec_of(defs, "orders_flow/report")
        assert report.description == "One line for people. (str)"
        assert _own(report.tags) == {"team": "sales", "tier": "gold"}  # the node's own tag is kept
        assert report.metadata["owner_team"] == "sales"
        orders = spec_of(defs, "orders_flow/orders")
        assert _own(orders.tags) == {"tier": "silver"}
        assert orders.metadata["owner_team"] == "none"
        assert "hamilton/return_type" in orders.metadata  # merged, not replaced
        assert orders.metadata["dagster/column_schema"].columns[0].name == "amount"
        assert {d.asset_key.to_user_string() for d in spec_of(defs, "orders_flow/total").deps} == {
            "orders_flow/orders"
        }
        [check] = [c for c in defs.resolve_asset_graph().asset_check_keys]
        assert check.asset_key == dg.AssetKey(["orders_flow", "total"])


def test_partitions_render_templates_and_feed_the_partition_input(monkeypatch, data_dir):
    monkeypatch.setenv("SALES_TZ", "Europe/Berlin")
    attributes = f"""
        modules: [{FLOW}]
        config: {{region: emea}}
        partitions_def: {{type: daily, start_date: "2026-01-01", timezone: "{{{{ env('SALES_TZ') }}}}"}}
        partition_input: day
        op: {{name: daily_orders, tags: {{team: sales}}, pool: orders_db, backfill_policy: {{type: single_run}}}}
        retry_policy: {{max_retries: 3, delay: 0.5, backoff: exponential, jitter: plus_minus}}
    """
    with loaded(attributes) as (component, defs):
        assert component.partitions_def.timezone == "Europe/Berlin"
        [assets] = defs.assets
        assert assets.node_def.name == "daily_orders"
        assert assets.op.tags["team"] == "sales" and assets.op.pool == "orders_db"
        assert assets.backfill_policy == dg.BackfillPolicy.single_run()
        policy = assets.op.retry_policy
        assert (policy.max_retries, policy.delay, policy.backoff, policy.jitter) == (
            3,
            0.5,
            dg.Backoff.EXPONENTIAL,
            dg.Jitter.PLUS_MINUS,
        )
        assert dg.materialize([assets], partition_key="2026-01-05").success
    stored = ValueStore(data_dir / "assets").read(dg.AssetKey("orders"), "2026-01-05")
    assert set(stored["day"]) == {"2026-01-05"}


def test_automation_split_by_group_and_runtime_options(tmp_path):
    attributes = f"""
        modules: [{FLOW}]
        config: {{region: emea}}
        automation: on_code_change
        split_by_group: true
        store: {tmp_path / "store"}
        formats: [tests.components.plugins.Text]
        max_parallel_nodes: 2
        progress_callbacks: [tests.components.plugins.record_progress, tests.components.plugins.progress_for]
        observers: [tests.components.plugins.Recording]
        runtime: {{progress_bar: false, heartbeat_s: 2.5}}
    """
    plugins.UPDATES.clear()
    plugins.MATERIALIZED.clear()
    plugins.FACTORY_NAMES.clear()
    with loaded(attributes) as (component, defs):
        by_name = {assets.node_def.name: assets for assets in defs.assets}
        assert set(by_name) == {"orders_flow__orders_flow", "orders_flow__reporting"}
        condition = spec_of(defs, "report").automation_condition
        assert condition is not None and condition.get_label() == "on_code_change"
        assert plugins.FACTORY_NAMES == ["orders_flow"]  # a factory gets the dataflow's name
        options = component.step_options()
        assert options.max_parallel_nodes == 2 and options.runtime.heartbeat_s == 2.5
        assert dg.materialize(list(by_name.values())).success
    assert (tmp_path / "store" / "report" / "value.txt").read_text() == "emea: 6.00"
    assert plugins.MATERIALIZED.count("report") == 1
    steps = [step for step, _, _ in plugins.UPDATES]
    assert steps.count("report") >= 2  # the callback itself and the factory's callback


def test_post_processing_works_as_for_any_component():
    extra = """
        post_processing:
          assets:
            - target: "key:report"
              attributes: {metadata: {reviewed: "yes"}, group_name: published}
    """
    with loaded(f"modules: [{FLOW}]\nconfig: {{region: emea}}", extra) as (_, defs):
        assert spec_of(defs, "report").group_name == "published"
        assert spec_of(defs, "report").metadata["reviewed"] == "yes"
        assert "reviewed" not in spec_of(defs, "total").metadata


class Audited(HamiltonComponent):
    """A subclass changing one node's spec; its key change must reach dependencies too."""

    def get_asset_spec(self, node: HamiltonNode) -> dg.AssetSpec:
        spec = super().get_asset_spec(node)
        if node.name == "total":
            spec = spec.replace_attributes(key=dg.AssetKey(["audited", "total"]))
        return spec.merge_attributes(tags={"audited": "true"})


class ShortNames(HamiltonTranslator):
    def get_asset_key(self, node: HamiltonNode) -> dg.AssetKey:
        return dg.AssetKey(["short", node.name[:3]])


class OwnTranslator(HamiltonComponent):
    def get_translator(self) -> HamiltonTranslator:
        return ShortNames()


def test_a_subclass_overrides_get_asset_spec_or_returns_its_own_translator():
    attributes = f"modules: [{FLOW}]\nconfig: {{region: emea}}\ntranslation: {{key_prefix: x}}"
    with create_defs_folder_sandbox() as sandbox:
        for name, cls in (("audited", Audited), ("own", OwnTranslator)):
            folder = sandbox.defs_folder_path / name
            folder.mkdir()
            body = textwrap.indent(f"name: {name}\n{attributes}", "  ")
            (folder / "defs.yaml").write_text(f"type: {__name__}.{cls.__name__}\nattributes:\n{body}\n")
        with sandbox.load_component_and_build_defs(defs_path=sandbox.defs_folder_path / "audited") as (
            _,
            defs,
        ):
            report = spec_of(defs, "x/report")
            assert {d.asset_key for d in report.deps} == {dg.AssetKey(["x", "audited", "total"])}
            assert report.tags["audited"] == "true"
        with sandbox.load_component_and_build_defs(defs_path=sandbox.defs_folder_path / "own") as (_, defs):
            assert {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()} == {
                "x/short/ord",
                "x/short/tot",
                "x/short/rep",
            }


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ("modules: []", "modules: list at least one Hamilton module"),
        (
            "modules: [tests.components.no_such_flow]",
            "modules: cannot import 'tests.components.no_such_flow'",
        ),
        (f"modules: [{FLOW}]\nautomation: hourly", "automation: 'hourly' is not one of"),
        (
            f"modules: [{FLOW}]\nformats: [tests.components.plugins.NOT_A_FORMAT]",
            "formats: 'tests.components",
        ),
        (
            f"modules: [{FLOW}]\nprogress_callbacks: [tests.components.plugins.Recording]",
            "progress_callbacks:",
        ),
        (f"modules: [{FLOW}]\nobservers: [tests.components.plugins.Nobody]", "observers: cannot import"),
        (f"modules: [{FLOW}]\nop: {{description: hi}}", "op.description is not used"),
        (f"modules: [{FLOW}]\nname: a\nop: {{name: b}}", "name='a' and op.name='b' both name"),
        (f"modules: [{FLOW}]\npartition_input: day", "defs.yaml: partition_input='day' needs partitions_def"),
        (f"modules: [{FLOW}]\ntranslation: {{key: same}}", "defs.yaml: Nodes 'orders' and 'total' both map"),
        (
            f"modules: [{FLOW}]\nretry_policy: {{backoff: sometimes}}",
            "Input should be 'linear' or 'exponential'",
        ),
        (f"modules: [{FLOW}]\nruntime: {{heartbeat_s: 0}}", "heartbeat_s"),
    ],
)
def test_bad_yaml_gets_one_error_naming_the_file_and_field(attributes, expected):
    message = load_error(attributes)
    assert expected in message
    assert "defs.yaml" in message


def test_the_scaffolder_writes_a_defs_yaml_that_loads():
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(HamiltonComponent, "flows/orders", scaffold_params={"module": FLOW})
        assert f"- {FLOW}" in (path / "defs.yaml").read_text()
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, HamiltonComponent)
            assert {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()} == {
                "orders",
                "total",
                "report",
            }
        with pytest.raises(Exception, match="--module my_pkg.my_dataflow"):
            sandbox.scaffold_component(HamiltonComponent, "flows/nothing")


def test_the_shipped_project_is_its_defs_folder():
    folder = Path(__file__).resolve().parents[2] / "orchestration" / "defs"
    yamls = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("defs.yaml"))
    assert yamls == ["ml/defs.yaml", "sales/defs.yaml"]


def test_a_module_whose_dependency_is_missing_names_the_extra(monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "sklearn"] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the `ml` extra were not installed
    monkeypatch.delitem(sys.modules, "hamilton_pipelines.ml_pipeline", raising=False)
    message = load_error("modules: [hamilton_pipelines.ml_pipeline]")
    assert "'sklearn.datasets', which it imports, is not installed" in message
    assert "pip install 'hamilton-dagster-pipelines[ml]'" in message


def test_translation_as_one_template_and_a_failing_template():
    whole = f"""
        modules: [{FLOW}]
        config: {{region: emea}}
        translation: "{{{{ {{'owners': ['team:' ~ node.name], 'key_prefix': 'w'}} }}}}"
    """
    with loaded(whole) as (_, defs):
        assert spec_of(defs, "w/total").owners == ["team:total"]
        assert {d.asset_key for d in spec_of(defs, "w/report").deps} == {dg.AssetKey(["w", "total"])}
    message = load_error(
        f"modules: [{FLOW}]\nconfig: {{region: emea}}\ntranslation: {{group_name: '{{{{ node.nme }}}}'}}"
    )
    assert "translation.group_name: rendering it for node 'orders' failed" in message
    assert "defs.yaml" in message


def test_review_cases_translation_deps_kinds_flags_and_automation(monkeypatch):
    monkeypatch.setenv("SPLIT", "false")
    attributes = f"""
        modules: [{FLOW}]
        config: {{region: emea}}
        split_by_group: "{{{{ env('SPLIT') }}}}"
        max_parallel_nodes: "{{{{ env('NODES', '2') }}}}"
        translation: {{deps: [external/thing], kinds: [snowflake], tags: {{a: b}}}}
    """
    with loaded(attributes) as (component, defs):
        assert len(defs.assets) == 1 and component.max_parallel_nodes == 2  # 'false' is false
        report = spec_of(defs, "report")
        assert {d.asset_key.to_user_string() for d in report.deps} == {"total", "external/thing"}
        assert report.kinds == {"snowflake"} and _own(report.tags) == {"a": "b", "team": "sales"}
    own = f"modules: [{FLOW}]\nconfig: {{region: emea}}\nautomation: eager"
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "own"
        folder.mkdir()
        body = textwrap.indent(own, "  ")
        (folder / "defs.yaml").write_text(f"type: {__name__}.OwnTranslator\nattributes:\n{body}\n")
        with sandbox.load_component_and_build_defs(defs_path=folder) as (_, defs):
            assert spec_of(defs, "short/rep").automation_condition is not None  # `automation:` still holds
    for bad, says in [
        ("runtime: {stor_url: /tmp/x}", "runtime.stor_url is not a field of HamiltonRuntime"),
        ("split_by_group: sometimes", "split_by_group: 'sometimes' is not true or false"),
        ("max_parallel_nodes: 0", "max_parallel_nodes: 0 is below 1"),
        ('translation: {group_name: "{{ 2024 }}"}', "the attributes rendered for node"),
        ("modules: [nopkg.flow]", "cannot import 'nopkg.flow': it was not found"),
    ]:
        extra = "" if bad.startswith("modules") else f"modules: [{FLOW}]\n"
        assert says in load_error(f"{extra}config: {{region: emea}}\n{bad}"), bad
