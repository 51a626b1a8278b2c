"""The project's own errors: each names the culprit (node, file, key) and says how to fix it."""


class DataflowError(ValueError):
    """A Hamilton dataflow cannot become Dagster assets; raised at definitions load."""


class MissingUpstreamError(RuntimeError):
    """An asset outside the selection is needed but has never been stored."""


class NodeExecutionError(RuntimeError):
    """A Hamilton node raised; carries the node name and the original traceback."""

    def __init__(self, node_name: str, asset_key: str, traceback_text: str):
        self.node_name = node_name
        self.asset_key = asset_key
        self.traceback_text = traceback_text
        super().__init__(
            f"Hamilton node '{node_name}' (asset {asset_key}) failed:\n{traceback_text}"
        )


class StorageError(RuntimeError):
    """A value could not be written to or read from the value store."""
