"""Hamilton dataflows as Dagster assets: `hamilton_assets` (one step per selection),
`hamilton_assets_by_group` (one step per asset group) and the `HamiltonTranslator`."""

from orchestration.assets import hamilton_assets, hamilton_assets_by_group
from orchestration.errors import DataflowError, MissingUpstreamError, StorageError
from orchestration.storage.formats import ValueFormat
from orchestration.storage.store import ValueStore
from orchestration.translator import HamiltonTranslator

__all__ = [
    "DataflowError",
    "HamiltonTranslator",
    "MissingUpstreamError",
    "StorageError",
    "ValueFormat",
    "ValueStore",
    "hamilton_assets",
    "hamilton_assets_by_group",
]
