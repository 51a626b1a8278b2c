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
import time
from collections.abc import Collection, Mapping
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
        self._metrics: dict[str, StepMetrics] = {}
        self._started: dict[tuple[str, str], float] = {}  # (run, asset) -> when its first node started

    def run_before_graph_execution(
        self,
        *,
        run_id: str,
        inputs: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        execution_path: Collection[str] = (),
        **future_kwargs: Any,
    ) -> None:
        url = self.pushgateway_url or os.environ.get(PUSHGATEWAY_URL)
        if not url or (dataflow := self.classified()) is None:
            return
        given = {*(inputs or {}), *(overrides or {})}
        assets = [
            name
            for name in dataflow.order
            if name in execution_path and name in dataflow.assets and name not in given
        ]
        self._metrics[run_id] = StepMetrics(Pushgateway(url), dataflow.name, run_id, assets, len(assets))

    def run_before_node_execution(self, *, node_name: str, run_id: str, **future_kwargs: Any) -> None:
        if run_id in self._metrics and (asset := self._asset_of(node_name)) is not None:
            self._started.setdefault((run_id, asset), time.perf_counter())

    def run_after_node_execution(
        self, *, node_name: str, run_id: str, result: Any = None, success: bool = True, **future_kwargs: Any
    ) -> None:
        if (metrics := self._metrics.get(run_id)) is None:
            return
        if not success and (asset := self._asset_of(node_name)) is not None:
            if self._started.pop((run_id, asset), None) is not None:  # once, however many of its nodes fail
                metrics.failed(asset)
        elif success and self._dataflow is not None and node_name in self._dataflow.assets:
            started = self._started.pop((run_id, node_name), time.perf_counter())
            metrics.materialized(node_name, time.perf_counter() - started, row_count(result))

    def run_after_graph_execution(self, *, run_id: str, **future_kwargs: Any) -> None:
        if (metrics := self._metrics.pop(run_id, None)) is None:
            return
        self._started = {key: value for key, value in self._started.items() if key[0] != run_id}
        if metrics.error is None:
            metrics.finish(self.wait_s)
        if metrics.error is not None:
            logger.warning(not_delivered(metrics, "the execution"))

    def _asset_of(self, node_name: str) -> str | None:
        return self._dataflow.asset_of(node_name) if self._dataflow is not None else None
