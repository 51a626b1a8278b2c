"""How a Hamilton node looks as a Dagster asset: small overridable getters, one `get_asset_spec`.

Subclass `HamiltonTranslator` and override a getter to change one aspect for every node, or tag a
single function with Hamilton's `@tag` under the `dagster.` prefix:

    @tag(**{"dagster.asset_key": "sales/report", "dagster.group": "reporting",
            "dagster.owners": "team:analytics", "dagster.kinds": "markdown"})
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta

import dagster as dg
from dagster._utils.tags import is_valid_strict_tag_value, is_valid_tag_key
from hamilton import htypes
from hamilton.graph_types import HamiltonNode

from orchestration.code_versions import code_version

TAG_PREFIX = "dagster."
VALID_SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
KIND_BY_MODULE = {"pandas": "pandas", "numpy": "numpy", "sklearn": "scikitlearn", "polars": "polars"}


class HamiltonTranslator:
    """Turns Hamilton nodes into Dagster `AssetSpec`s; override any getter to customise."""

    def __init__(self, key_prefix: str | Sequence[str] | None = None, automation: str | None = None):
        """`automation`: the `dagster.automation` value for nodes without their own tag."""
        if isinstance(key_prefix, str):
            key_prefix = key_prefix.split("/")
        self.key_prefix = tuple(key_prefix or ())
        self.automation = automation

    def get_asset_key(self, node: HamiltonNode) -> dg.AssetKey:
        """`dagster.asset_key` tag ("a/b"), else the prefix plus the node name (dots nest)."""
        override = node.tags.get(f"{TAG_PREFIX}asset_key")
        if override:
            return dg.AssetKey(str(override).split("/"))
        return dg.AssetKey([*self.key_prefix, *node.name.split(".")])

    def get_group_name(self, node: HamiltonNode) -> str | None:
        """`dagster.group` tag, else the short name of the node's module."""
        override = node.tags.get(f"{TAG_PREFIX}group")
        if override:
            return str(override)
        module = node.tags.get("module")
        return str(module).rsplit(".", 1)[-1] if module else None

    def get_description(self, node: HamiltonNode) -> str | None:
        """The function's docstring."""
        return inspect.cleandoc(node.documentation) if node.documentation else None

    def get_code_version(self, node: HamiltonNode) -> str | None:
        """Hamilton's hash of the function source (docstrings and comments ignored)."""
        functions = node.originating_functions
        return code_version(functions[0]) if functions else None

    def get_metadata(self, node: HamiltonNode) -> dict[str, object]:
        """Return type and a link to the function's file and line."""
        metadata: dict[str, object] = {"hamilton/return_type": htypes.get_type_as_string(node.type)}
        functions = node.originating_functions
        if functions:
            source_file, line = _source_location(functions[0])
            if source_file:
                metadata["dagster/code_references"] = _code_reference(source_file, line)
        return metadata

    def get_column_schema(self, node: HamiltonNode, columns: Sequence[HamiltonNode]) -> dg.TableSchema | None:
        """Columns declared by `@schema.output` or by `@extract_columns` children."""
        declared = node.tags.get("hamilton.internal.schema_output")
        if declared:
            pairs = [item.split("=", 1) for item in str(declared).split(",") if "=" in item]
            return dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in pairs])
        if columns:
            return dg.TableSchema(
                columns=[
                    dg.TableColumn(column.name, htypes.get_type_as_string(column.type)) for column in columns
                ]
            )
        return None

    def get_tags(self, node: HamiltonNode) -> dict[str, str]:
        """The node's own Hamilton tags that are valid Dagster tags (framework tags left out)."""
        return {
            key: value
            for key, value in node.tags.items()
            if isinstance(value, str)
            and key != "module"
            and not key.startswith(("hamilton.", TAG_PREFIX))
            and is_valid_tag_key(key)
            and is_valid_strict_tag_value(value)
        }

    def get_owners(self, node: HamiltonNode) -> list[str]:
        """`dagster.owners` tag: comma-separated e-mails or `team:` names."""
        return _split(node.tags.get(f"{TAG_PREFIX}owners"))

    def get_kinds(self, node: HamiltonNode) -> set[str]:
        """`hamilton`, plus the library of the return type (pandas, numpy, ...) or `dagster.kinds`."""
        kinds = {"hamilton", *_split(node.tags.get(f"{TAG_PREFIX}kinds"))}
        library = getattr(node.type, "__module__", "").split(".", 1)[0]
        if library in KIND_BY_MODULE:
            kinds.add(KIND_BY_MODULE[library])
        return set(sorted(kinds)[:3])

    def get_automation_condition(self, node: HamiltonNode) -> dg.AutomationCondition | None:
        """`dagster.automation` tag (else the translator's `automation`): `eager`, `on_missing`,
        `on_code_change` or `on_cron:<cron>`; none by default."""
        value = node.tags.get(f"{TAG_PREFIX}automation") or self.automation
        if not value:
            return None
        try:
            return automation_condition(str(value))
        except ValueError as error:
            raise ValueError(f"Node '{node.name}': tag dagster.automation={error}") from None

    def get_freshness_policy(self, node: HamiltonNode) -> dg.FreshnessPolicy | None:
        """`dagster.freshness_hours` tag (fail after), optional `dagster.freshness_warn_hours`."""
        fail = node.tags.get(f"{TAG_PREFIX}freshness_hours")
        if not fail:
            return None
        warn = node.tags.get(f"{TAG_PREFIX}freshness_warn_hours")
        try:
            return dg.FreshnessPolicy.time_window(
                fail_window=timedelta(hours=float(fail)),
                warn_window=timedelta(hours=float(warn)) if warn else None,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Node '{node.name}': freshness tags must be hours, e.g. "
                f"@tag(**{{'dagster.freshness_hours': '26'}}); got {fail!r}/{warn!r} ({error})."
            ) from None

    def _key_of(self, node: HamiltonNode) -> dg.AssetKey:
        """`get_asset_key`, once per node: upstream keys are asked for again and again."""
        keys = self.__dict__.get("_keys")  # id -> (node, key); the node pins its id
        if keys is None:
            keys = self.__dict__["_keys"] = {}
        known = keys.get(id(node))
        if known is None:
            known = keys[id(node)] = (node, self.get_asset_key(node))
        return known[1]

    def get_asset_spec(
        self,
        node: HamiltonNode,
        upstream: Sequence[HamiltonNode] = (),
        columns: Sequence[HamiltonNode] = (),
        extra_deps: Sequence[dg.AssetKey] = (),
    ) -> dg.AssetSpec:
        """Composes the getters above into one spec."""
        metadata = self.get_metadata(node)
        schema = self.get_column_schema(node, columns)
        if schema is not None:
            metadata["dagster/column_schema"] = schema
        return dg.AssetSpec(
            key=self._key_of(node),
            deps=[*(self._key_of(up) for up in upstream), *extra_deps],
            description=self.get_description(node),
            metadata=metadata,
            group_name=self.get_group_name(node),
            code_version=self.get_code_version(node),
            tags=self.get_tags(node),
            owners=self.get_owners(node),
            kinds=self.get_kinds(node),
            automation_condition=self.get_automation_condition(node),
            freshness_policy=self.get_freshness_policy(node),
        )


AUTOMATIONS = "'eager', 'on_missing', 'on_code_change', 'on_cron:<cron expression>'"


def automation_condition(value: str) -> dg.AutomationCondition:
    """The condition an automation name stands for; a name that is none of them is refused."""
    if value == "eager":
        return dg.AutomationCondition.eager()
    if value == "on_code_change":
        return on_code_change()
    if value == "on_missing":
        return dg.AutomationCondition.on_missing()
    if value.startswith("on_cron:"):
        return dg.AutomationCondition.on_cron(value.split(":", 1)[1])
    raise ValueError(f"{value!r} is not one of {AUTOMATIONS}.")


def on_code_change() -> dg.AutomationCondition:
    """Re-materialize an asset when its code version changes or an upstream asset is updated, so
    one edited function re-runs exactly itself and what is downstream of it (latest partition)."""
    condition = dg.AutomationCondition
    changed = condition.code_version_changed() | condition.any_deps_updated()
    # Dagster annotates since_last_handled()'s self as asset-or-check only; asset-only conditions work too
    changed_since_handled = changed.since_last_handled()  # type: ignore[misc]
    return (
        condition.in_latest_time_window()
        & changed_since_handled
        & ~condition.any_deps_missing()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
    ).with_label("on_code_change")


@functools.cache
def _source_location(fn: Callable) -> tuple[str | None, int | None]:
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    return (code.co_filename, code.co_firstlineno) if code else (None, None)


def _code_reference(source_file: str, line: int | None) -> dg.CodeReferencesMetadataValue:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # stable in the UI since 1.7
        return dg.CodeReferencesMetadataValue(
            code_references=[dg.LocalFileCodeReference(file_path=source_file, line_number=line)]
        )


def _split(value: object) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [item.strip() for item in items if item.strip()]


def is_valid_key(key: dg.AssetKey) -> bool:
    return all(VALID_SEGMENT.match(segment) for segment in key.path)
