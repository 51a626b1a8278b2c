"""Hamilton dataflows as Dagster assets.

`hamilton_assets` (one step per selection) and `hamilton_assets_by_group` (one step per asset
group) build the assets; `HamiltonTranslator` decides how each node looks in Dagster;
`StepOptions` says how steps run and `HamiltonRuntime` what they read when they do; a
`StepObserver` follows a step as it runs. `HamiltonComponent` declares a dataflow in a `dg`
project's `defs.yaml`.
"""

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

__all__ = [
    "CheckOutcome",
    "DataflowError",
    "HamiltonComponent",
    "HamiltonRuntime",
    "HamiltonTranslator",
    "Materialized",
    "MissingUpstreamError",
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
