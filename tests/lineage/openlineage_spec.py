"""Validation of events against the OpenLineage JSON Schemas in ../shared/openlineage-spec/.

Every schema file is registered under its `$id`; RunEvents are validated against the core
schema's `RunEvent`, each facet against its own file, with format checks (date-time, uuid). This
project's own facets (`orchestration/lineage/facets/`) are validated the same way.
"""

import json
from functools import cache
from pathlib import Path

import pytest

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "openlineage-spec"
OWN_FACETS = Path(__file__).resolve().parents[2] / "orchestration" / "lineage" / "facets"  # this project's
CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


@cache
def _registry():
    from referencing import Registry, Resource

    schemas = [
        json.loads(p.read_text())
        for p in [
            SPEC_DIR / "OpenLineage.json",
            *sorted((SPEC_DIR / "facets").glob("*.json")),
            *sorted(OWN_FACETS.glob("*.json")),
        ]
    ]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    facet_files = {Path(s["$id"]).stem: s for s in schemas}
    return registry, facet_files


def require_spec() -> None:
    if not (SPEC_DIR / "OpenLineage.json").is_file():
        pytest.skip(f"OpenLineage spec not found at {SPEC_DIR} (it ships beside the checkout in CI only)")


def validate_event(event: dict) -> None:
    """Raises jsonschema.ValidationError naming what is wrong."""
    from jsonschema import Draft202012Validator, FormatChecker

    registry, facet_files = _registry()
    checker = FormatChecker()
    Draft202012Validator(
        {"$ref": f"{CORE_ID}#/$defs/RunEvent"}, registry=registry, format_checker=checker
    ).validate(event)
    for key, facet in _facets(event):
        schema = facet_files[facet["_schemaURL"].split("#")[0].rsplit("/", 1)[-1].removesuffix(".json")]
        Draft202012Validator(schema, registry=registry, format_checker=checker).validate({key: facet})


def _facets(event: dict):
    yield from event["run"].get("facets", {}).items()
    yield from event["job"].get("facets", {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for group in ("facets", "inputFacets", "outputFacets"):
            yield from dataset.get(group, {}).items()
