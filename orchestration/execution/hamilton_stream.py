"""A Hamilton adapter that hands each finished node to the Dagster step listening in this thread.

Hamilton runs a dataflow in one call; Dagster wants each asset reported as soon as it exists.
The step runs Hamilton in a worker thread and this hook passes results back through a queue.
The step's listener lives in a context variable, so `ParallelNodes` can carry it into the threads
where Hamilton then runs nodes.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable, Collection
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hamilton.lifecycle import NodeExecutionHook
from hamilton.plugins.h_threadpool import FutureAdapter


class RunCancelled(Exception):
    """Raised inside Hamilton to stop a run whose Dagster step has already given up."""


@dataclass(frozen=True)
class NodeResult:
    node_name: str
    result: Any
    duration_s: float
    error: BaseException | None = None


@dataclass
class _Listener:
    wanted: Collection[str]
    sink: Callable[[NodeResult], None]
    cancelled: threading.Event
    on_start: Callable[[str], None]
    started: dict[str, float] = field(default_factory=dict)
    unreported_s: float = 0.0


_listener: contextvars.ContextVar[_Listener | None] = contextvars.ContextVar("result_stream", default=None)


class ResultStream(NodeExecutionHook):
    """Announces node starts and reports wanted results and any failure; time spent in nodes that
    are not reported counts toward the next reported one."""

    @contextmanager
    def listen(
        self,
        wanted: Collection[str],
        sink: Callable[[NodeResult], None],
        cancelled: threading.Event,
        on_start: Callable[[str], None],
    ):
        """`on_start` runs in Hamilton's thread before each node, so it happens before the node
        can crash the process; results go to `sink`."""
        token = _listener.set(_Listener(wanted, sink, cancelled, on_start))
        try:
            yield
        finally:
            _listener.reset(token)

    def run_before_node_execution(self, *, node_name: str, **future_kwargs: Any) -> None:
        listener = _listener.get()
        if listener is None:
            return
        if listener.cancelled.is_set():
            raise RunCancelled(f"stopped before node '{node_name}'")
        listener.on_start(node_name)
        listener.started[node_name] = time.perf_counter()

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        result: Any,
        error: Exception | None,
        success: bool,
        **future_kwargs: Any,
    ) -> None:
        listener = _listener.get()
        if listener is None:
            return
        duration = time.perf_counter() - listener.started.pop(node_name, time.perf_counter())
        if success and node_name not in listener.wanted:
            listener.unreported_s += duration
            return
        listener.sink(NodeResult(node_name, result, duration + listener.unreported_s, error))
        listener.unreported_s = 0.0


class ParallelNodes(FutureAdapter):
    """Hamilton's thread-pool adapter: runs up to `max_workers` nodes of a step at once, each as
    soon as its inputs exist, in the context (and so with the listener) of the step that asked."""

    def do_remote_execute(self, *, execute_lifecycle_for_node: Callable, node, **kwargs: Any) -> Any:
        in_step_context = functools.partial(contextvars.copy_context().run, execute_lifecycle_for_node)
        return super().do_remote_execute(execute_lifecycle_for_node=in_step_context, node=node, **kwargs)
