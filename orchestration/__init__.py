"""Hamilton dataflows as Dagster assets.

`hamilton_assets` (one step per selection) and `hamilton_assets_by_group` (one step per asset
group) build the assets; `HamiltonTranslator` decides how each node looks in Dagster;
`StepOptions` says how steps run and `HamiltonRuntime` what they read when they do; a
`StepObserver` follows a step as it runs. `HamiltonComponent` declares a dataflow in a `dg`
project's `defs.yaml`. `OpenLineageAdapter`, `ProgressAdapter` and `PrometheusAdapter` bring
the same lineage, progress callbacks and metrics to a plain Hamilton driver.

Names are imported when first used (PEP 562), so `from orchestration import ProgressAdapter`
does not import Dagster: plain Hamilton users need not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "CheckOutcome": "orchestration.observers",
    "DataflowError": "orchestration.errors",
    "HamiltonComponent": "orchestration.component",
    "HamiltonRuntime": "orchestration.runtime",
    "HamiltonTranslator": "orchestration.translator",
    "Materialized": "orchestration.observers",
    "MissingUpstreamError": "orchestration.errors",
    "OpenLineageAdapter": "orchestration.adapters.openlineage",
    "ProgressAdapter": "orchestration.adapters.progress",
    "PrometheusAdapter": "orchestration.adapters.prometheus",
    "ProgressSettings": "orchestration.monitoring.progress",
    "StepInfo": "orchestration.observers",
    "StepObserver": "orchestration.observers",
    "StepOptions": "orchestration.options",
    "StorageError": "orchestration.errors",
    "TemplateNode": "orchestration.component",
    "ValueFormat": "orchestration.storage.formats",
    "ValueStore": "orchestration.storage.store",
    "hamilton_assets": "orchestration.assets",
    "hamilton_assets_by_group": "orchestration.assets",
}
__all__ = [
    "CheckOutcome",
    "DataflowError",
    "HamiltonComponent",
    "HamiltonRuntime",
    "HamiltonTranslator",
    "Materialized",
    "MissingUpstreamError",
    "OpenLineageAdapter",
    "ProgressAdapter",
    "PrometheusAdapter",
    "ProgressSettings",
    "StepInfo",
    "StepObserver",
    "StepOptions",
    "StorageError",
    "TemplateNode",
    "ValueFormat",
    "ValueStore",
    "hamilton_assets",
    "hamilton_assets_by_group",
]

if TYPE_CHECKING:
    from orchestration.adapters.openlineage import OpenLineageAdapter
    from orchestration.adapters.progress import ProgressAdapter
    from orchestration.adapters.prometheus import PrometheusAdapter
    from orchestration.assets import hamilton_assets, hamilton_assets_by_group
    from orchestration.component import HamiltonComponent, TemplateNode
    from orchestration.errors import DataflowError, MissingUpstreamError, StorageError
    from orchestration.monitoring.progress import ProgressSettings
    from orchestration.observers import CheckOutcome, Materialized, StepInfo, StepObserver
    from orchestration.options import StepOptions
    from orchestration.runtime import HamiltonRuntime
    from orchestration.storage.formats import ValueFormat
    from orchestration.storage.store import ValueStore
    from orchestration.translator import HamiltonTranslator


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'orchestration' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
