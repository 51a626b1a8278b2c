"""Hamilton dataflows as Dagster assets: `hamilton_assets` and the `HamiltonTranslator`."""

from orchestration.assets import hamilton_assets
from orchestration.errors import DataflowError, MissingUpstreamError, StorageError
from orchestration.formats import ValueFormat
from orchestration.storage import ValueStore
from orchestration.translator import HamiltonTranslator

__all__ = [
    "DataflowError",
    "HamiltonTranslator",
    "MissingUpstreamError",
    "StorageError",
    "ValueFormat",
    "ValueStore",
    "hamilton_assets",
]
