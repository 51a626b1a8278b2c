"""The step observer protocol: how lineage, metrics and the terminal bar follow a step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from orchestration.column_lineage import ColumnSource
    from orchestration.execution.plan import ExecutionPlan
    from orchestration.execution.runner import StepRunner
    from orchestration.storage.store import StoredValue


class StepObserver:
    """Told how a step goes, as it goes (lineage, metrics, the terminal bar). Hooks must not block;
    an observer's error is logged and never breaks the run.

    Threads: every hook runs in the step's own thread (the one Dagster runs the op in), in the
    order things happened, never in Hamilton's threads: `asset_started` comes just after Hamilton
    starts the asset's first node.
    """

    def step_started(self, context, runner: StepRunner, plan: ExecutionPlan) -> None: ...

    def asset_started(self, context, asset: str) -> None: ...

    def asset_running(self, context, asset: str, running_s: float) -> None:
        """The asset's node has run past `ProgressSettings.live_after_s`; again on each heartbeat."""

    def asset_materialized(self, context, asset: str, materialized: Materialized) -> None: ...

    def asset_failed(self, context, asset: str, error: BaseException) -> None: ...

    def before_report(self, context) -> None:
        """What was stored since the last call is about to be reported to Dagster: make durable
        now whatever must be before Dagster records it (lineage spools its events here, for all
        of them in one commit)."""

    def step_finished(self, context, success: bool) -> None: ...


@dataclass(frozen=True)
class Materialized:
    """What an observer learns about a stored asset value."""

    value: Any
    stored: StoredValue
    duration_s: float
    lineage: Mapping[str, list[ColumnSource]]
    check_results: Sequence[dg.AssetCheckResult]
    upstream_paths: Mapping[str, str]  # upstream asset (or input) -> its stored file
