"""The project's own errors: each names the culprit (node, file, key) and says how to fix it."""


class DataflowError(ValueError):
    """A Hamilton dataflow cannot become Dagster assets; raised at definitions load."""


class MissingUpstreamError(RuntimeError):
    """An asset outside the selection is needed but has never been stored."""


class StorageError(RuntimeError):
    """A value could not be written to or read from the value store."""
