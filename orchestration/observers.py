"""The step observer protocol: the public way to follow a Hamilton step as it runs.

Lineage (`lineage.observer`), Prometheus metrics (`monitoring.metrics`) and the terminal bar
(`monitoring.terminal`) are its built-in implementations; `hamilton_assets(observers=[...])` adds
yours. Hooks are given a `StepInfo` and plain values (asset names, errors, `Materialized`), never
Dagster's types, so an observer can also follow a step run without Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestration.column_lineage import ColumnSource
    from orchestration.dataflow import Dataflow
    from orchestration.runtime import RuntimeSettings
    from orchestration.storage.store import StoredValue
    from orchestration.translator import HamiltonTranslator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepInfo:
    """What an observer knows about the step it follows.

    `assets` are the dataflow's asset nodes this step computes, by node name, in the order they
    run; `keys` gives each asset's key as people read it (`sales/daily_totals`). In a run over a
    partition range, hooks about one partition's work get a copy whose `partition` is that one
    (`None` before the first partition starts). Everything but `translator` (which answers
    owners and tags per node) and `context` (Dagster's, `None` outside a Dagster run) is plain data.
    """

    run_id: str
    name: str  # the multi-asset: the dataflow's name, or `<dataflow>__<group>` when split by group
    dataflow: Dataflow
    assets: tuple[str, ...]
    keys: Mapping[str, str]
    translator: HamiltonTranslator
    settings: RuntimeSettings
    partitions: tuple[str, ...] = ()  # none, one, or a range (a single-run backfill)
    partition: str | None = None  # the partition being computed now
    will_retry: bool = False  # a failure now is retried by Dagster (its RetryPolicy has attempts left)
    log: logging.Logger = logging.getLogger("orchestration.step")  # Dagster's run log in Dagster
    context: Any = None  # Dagster's `AssetExecutionContext`; None where Dagster does not run the step

    @property
    def in_partition_range(self) -> bool:
        """A single-run backfill: the step computes several partitions, one after another."""
        return len(self.partitions) > 1


@dataclass(frozen=True)
class CheckOutcome:
    """One data-quality check of an asset value (a Hamilton `@check_output` validator)."""

    name: str
    passed: bool
    blocking: bool  # `importance="fail"`: a failure stops the step
    description: str | None = None


@dataclass(frozen=True)
class Materialized:
    """What an observer learns about a stored asset value."""

    value: Any
    stored: StoredValue
    duration_s: float
    lineage: Mapping[str, list[ColumnSource]]  # output column -> the columns it was derived from
    checks: Sequence[CheckOutcome]
    upstream_paths: Mapping[str, str]  # upstream asset (or input) -> its stored file


class StepObserver:
    """Told how a step goes, as it goes. Override the hooks you need; each does nothing by default.

    Threads: every hook runs on the step's own thread (the one Dagster runs the op in), one at a
    time, in the order things happened; never on Hamilton's threads, even with
    `max_parallel_nodes`. An observer therefore needs no locks for its own state. Hooks must
    return quickly, as the step waits for them: send anything slow to a thread of your own.

    One instance follows every step of the multi-asset(s) it was given to, so keep per-step state
    by `step.run_id` (and `step.name` when several groups share the observer).

    Failures: an exception raised by a hook never breaks the run. It is logged once per step, as a
    warning in the run log naming the observer and the hook; later failures of the same hook in
    that step go to Python logging only.
    """

    def step_started(self, step: StepInfo) -> None:
        """The step is about to load what it reads and start Hamilton."""

    def asset_started(self, step: StepInfo, asset: str) -> None:
        """Hamilton started the asset's first node (reported just after, from the step's thread)."""

    def asset_running(self, step: StepInfo, asset: str, running_s: float) -> None:
        """The asset's node has run past `ProgressSettings.live_after_s`; again on each heartbeat."""

    def asset_materialized(self, step: StepInfo, asset: str, materialized: Materialized) -> None:
        """The asset's value is stored; Dagster has not recorded it yet (see `before_report`)."""

    def asset_failed(self, step: StepInfo, asset: str, error: BaseException) -> None:
        """The asset's node raised `error`; the step fails (and may be retried: `step.will_retry`)."""

    def before_report(self, step: StepInfo) -> None:
        """What was stored since the last call is about to be reported to Dagster: make durable
        now whatever must be before Dagster records it (lineage spools its events here, for all
        of them in one commit)."""

    def step_finished(self, step: StepInfo, success: bool) -> None:
        """The step ended; after this hook, no other is called for it."""


class ObserverGroup:
    """Calls one hook on each of a step's observers in turn, so that one failing observer neither
    breaks the step nor keeps the others from being told."""

    def __init__(self, observers: Sequence[StepObserver]):
        self.observers = observers
        self._failed: set[tuple[int, str]] = set()  # (observer, hook) already reported

    def notify(self, hook: Callable[..., None], step: StepInfo, *args: Any) -> None:
        """`hook` is the `StepObserver` method, e.g. `StepObserver.asset_started`."""
        for observer in self.observers:
            try:
                getattr(observer, hook.__name__)(step, *args)
            except Exception as error:
                name = f"{type(observer).__name__}.{hook.__name__}"
                if (id(observer), hook.__name__) in self._failed:
                    logger.debug("Observer %s failed again: %r", name, error)
                else:
                    self._failed.add((id(observer), hook.__name__))
                    logger.warning("Observer %s failed", name, exc_info=True)
                    step.log.warning(
                        f"Observer {name} failed: {type(error).__name__}: {error}. The step goes on "
                        "without it; further failures of this hook in this step are logged by Python "
                        "logging only."
                    )
