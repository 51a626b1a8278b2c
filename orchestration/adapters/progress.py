"""`ProgressAdapter`: the Dagster path's progress callbacks for a plain Hamilton driver.

    dr = driver.Builder().with_modules(m).with_adapters(ProgressAdapter([post_progress])).build()

Each callback is called `(node, percent, message)` with the same words as in a Dagster run:
`Executing <node> [k/N pct%]` as a node starts, `[k/N pct%] <node> done in 0.12 s (rows=…) — ETA …`
as it ends, and `<node> failed: <error>` if it raises. N counts the nodes this execution computes
(inputs and overrides never run). As in Dagster, the callbacks run on a thread of their own, so a
slow notifier never delays a node, and a failing one never fails the driver; at the end of the
execution the driver waits at most `wait_s` for updates still being delivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from hamilton.lifecycle import GraphExecutionHook, NodeExecutionHook

from orchestration.monitoring.callbacks import CallbackThread, ProgressCallback
from orchestration.monitoring.progress import StepProgress
from orchestration.values import row_count

logger = logging.getLogger(__name__)


class ProgressAdapter(GraphExecutionHook, NodeExecutionHook):
    """Calls `callbacks` as each node of an execution starts, ends or fails."""

    def __init__(self, callbacks: Sequence[ProgressCallback], wait_s: float = 5.0):
        if wait_s <= 0:
            raise ValueError(f"ProgressAdapter: wait_s must be above 0 seconds, got {wait_s!r}.")
        self.callbacks = list(callbacks)
        self.wait_s = wait_s
        self._progress: StepProgress | None = None
        self._thread: CallbackThread | None = None
        self._started: dict[str, float] = {}

    def __reduce__(self):
        """A copy for another process (Hamilton's multiprocessing executors run nodes there) calls
        nothing: callbacks belong to the driver's process, and the driver must not fail to pickle."""
        return (type(self), ([], self.wait_s))

    def run_before_graph_execution(
        self,
        *,
        inputs: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        execution_path: Collection[str] = (),
        **future_kwargs: Any,
    ) -> None:
        given = {*(inputs or {}), *(overrides or {})}
        self._progress = StepProgress([name for name in execution_path if name not in given])
        self._thread = CallbackThread(self.callbacks, "progress-adapter")

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        self._started[node_name] = time.perf_counter()
        if self._progress is not None and self._thread is not None:
            self._thread.send(node_name, self._progress.percent, self._progress.starting(node_name))

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        result: Any = None,
        error: Exception | None = None,
        success: bool = True,
        **future_kwargs: Any,
    ) -> None:
        if self._progress is None or self._thread is None:
            return
        seconds = time.perf_counter() - self._started.pop(node_name, time.perf_counter())
        if success:
            message = self._progress.finished(node_name, seconds, row_count(result))
        else:
            message = f"{node_name} failed: {type(error).__name__}: {error}"
        self._thread.send(node_name, self._progress.percent, message)

    def run_after_graph_execution(self, **future_kwargs: Any) -> None:
        if self._thread is not None:
            self._thread.close(self.wait_s)
            for warning in self._thread.warnings():
                logger.warning(warning)
        self._progress, self._thread = None, None
