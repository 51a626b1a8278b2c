"""`PrometheusAdapter`: the Dagster path's Prometheus metrics for a plain Hamilton driver.

    dr = driver.Builder().with_modules(m).with_adapters(PrometheusAdapter()).build()

Each execution pushes the same series as a Dagster step (`monitoring.metrics`): progress under
the execution's run id, and per asset its duration histogram, error counter and rows, labelled
`pipeline=<dataflow>` and `asset=<node>` exactly as in Dagster, so dashboards and the shipped alert
rules cover both. The Pushgateway is `pushgateway_url`, else `$PROMETHEUS_PUSHGATEWAY_URL`;
without one the adapter does nothing. Pushing runs on a thread of its own; a dead or hung
gateway costs the execution at most `wait_s` at its end and one warning, never a failure.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from hamilton.lifecycle import GraphExecutionHook, NodeExecutionHook

from orchestration.adapters.classified import ClassifiedGraph
from orchestration.monitoring.metrics import (
    PUSHGATEWAY_URL,
    STEP_END_WAIT_S,
    Pushgateway,
    StepMetrics,
    not_delivered,
)
from orchestration.values import row_count

logger = logging.getLogger(__name__)


@dataclass
class _Execution:
    """What the adapter keeps while one `execute` runs."""

    metrics: StepMetrics
    assets: set[str]  # the assets this execution computes
    started: dict[str, float] = field(default_factory=dict)  # asset -> when its first node started
    ended: set[str] = field(default_factory=set)


class PrometheusAdapter(ClassifiedGraph, GraphExecutionHook, NodeExecutionHook):
    """Pushes each execution's progress and each asset's duration, rows and errors."""

    def __init__(
        self, pushgateway_url: str | None = None, name: str | None = None, wait_s: float = STEP_END_WAIT_S
    ):
        if wait_s <= 0:
            raise ValueError(f"PrometheusAdapter: wait_s must be above 0 seconds, got {wait_s!r}.")
        super().__init__(name)
        self.pushgateway_url = pushgateway_url
        self.wait_s = wait_s
        self._executions: dict[str, _Execution] = {}
        self._lock = threading.Lock()  # node hooks may come from several threads at once

    def __reduce__(self):
        return (type(self), (self.pushgateway_url, self.name, self.wait_s))

    def run_before_graph_execution(
        self,
        *,
        run_id: str,
        inputs: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        execution_path: Collection[str] = (),
        **future_kwargs: Any,
    ) -> None:
        try:
            url = self.pushgateway_url or os.environ.get(PUSHGATEWAY_URL)
            if not url or (dataflow := self.classified()) is None:
                return
            path = set(execution_path) - {*(inputs or {}), *(overrides or {})}
            assets = [name for name in dataflow.order if name in path and name in dataflow.assets]
            metrics = StepMetrics(Pushgateway(url), dataflow.name, run_id, assets, len(assets))
            self._executions[run_id] = _Execution(metrics, set(assets))
        except Exception:  # metrics must never fail the driver
            logger.warning("Prometheus: no metrics for execution %s", run_id, exc_info=True)

    def run_before_node_execution(self, *, node_name: str, run_id: str, **future_kwargs: Any) -> None:
        if (execution := self._executions.get(run_id)) is not None and self._dataflow is not None:
            asset = self._dataflow.asset_of(node_name)
            if asset in execution.assets:
                with self._lock:
                    execution.started.setdefault(asset, time.perf_counter())

    def run_after_node_execution(
        self, *, node_name: str, run_id: str, result: Any = None, success: bool = True, **future_kwargs: Any
    ) -> None:
        if (execution := self._executions.get(run_id)) is None or self._dataflow is None:
            return
        asset = node_name if success else self._dataflow.asset_of(node_name)
        if asset not in execution.assets:  # a column, a check or an internal node: not the asset's end
            return
        with self._lock:  # once per asset, whichever thread gets here first
            if asset in execution.ended:
                return
            execution.ended.add(asset)
            started = execution.started.get(asset, time.perf_counter())
        try:
            if success:
                execution.metrics.materialized(asset, time.perf_counter() - started, row_count(result))
            else:
                execution.metrics.failed(asset)
        except Exception:  # metrics must never fail the driver
            logger.warning("Prometheus: no metrics for node %s", node_name, exc_info=True)

    def run_after_graph_execution(self, *, run_id: str, **future_kwargs: Any) -> None:
        if (execution := self._executions.pop(run_id, None)) is None:
            return
        metrics = execution.metrics
        if metrics.error is None:
            metrics.finish(self.wait_s)
        if metrics.error is not None:
            logger.warning(not_delivered(metrics, "the execution"))
