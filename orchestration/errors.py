"""The project's own errors: each names the culprit (node, file, key) and says how to fix it."""


class DataflowError(ValueError):
    """A Hamilton dataflow cannot become Dagster assets; raised at definitions load."""


class MissingUpstreamError(RuntimeError):
    """An asset outside the selection is needed but has never been stored."""


class StorageError(RuntimeError):
    """A value could not be written to or read from the value store."""


class NotDelivered(Exception):
    """A notifier could not deliver; the message never contains the notifier's secrets.
    `timed_out`: the target took the connection but did not answer in time (it hangs)."""

    def __init__(self, reason: str, timed_out: bool = False):
        super().__init__(reason)
        self.timed_out = timed_out
