"""Where a step is: assets done out of those it computes, percent and ETA, and the words for it.

N counts only the assets this step computes, so a run reaches 100% (Hamilton's own progress bars
count overridden nodes, which never run). Percent and ETA are weighted by each asset's last
successful duration, which Dagster stores with every materialization (`duration_s`): one slow
model and forty quick frames are not "41 equal steps". Assets never run before weigh the mean of
those that have; with no history at all, assets are counted.

All thresholds and intervals of progress reporting live in `ProgressSettings`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import AssetKey

logger = logging.getLogger(__name__)

MIN_WEIGHT_S = 0.001  # durations are stored to 0.1 ms; an instant asset still counts a little


@dataclass(frozen=True)
class ProgressSettings:
    """How a step reports progress while it runs.

    A node still running after `live_after_s` gets a `running <asset> …` run-log line, its lineage
    START and a Prometheus gauge; then a heartbeat line every `heartbeat_s` while it runs (and a
    progress line every `heartbeat_s` while quick nodes finish). At step end, callbacks still
    delivering get at most `callback_wait_s`. `from_env` reads `PIPELINE_LIVE_AFTER_S`,
    `PIPELINE_HEARTBEAT_S` and `PIPELINE_CALLBACK_WAIT_S`.
    """

    live_after_s: float = 1.0
    heartbeat_s: float = 30.0
    callback_wait_s: float = 5.0

    def __post_init__(self):
        for name in ("live_after_s", "heartbeat_s", "callback_wait_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(
                    f"ProgressSettings.{name} must be a number of seconds above 0, got {value!r}."
                )

    @classmethod
    def from_env(cls) -> ProgressSettings:
        values = {}
        for name, variable in (
            ("live_after_s", "PIPELINE_LIVE_AFTER_S"),
            ("heartbeat_s", "PIPELINE_HEARTBEAT_S"),
            ("callback_wait_s", "PIPELINE_CALLBACK_WAIT_S"),
        ):
            text = os.environ.get(variable, "").strip()
            if not text:
                continue
            try:
                values[name] = float(text)
            except ValueError:
                raise ValueError(
                    f"{variable}={text!r} is not a number of seconds; e.g. {variable}=2.5."
                ) from None
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{error} (from the PIPELINE_* environment variables)") from None


class StepProgress:
    """Counts finished assets of a step, weighs them by their usual durations, and says so.

    `units` are what the step computes, in order (an asset, or an asset of one partition in a range
    run); `usual_s` maps a unit to its asset's last successful duration where Dagster has one.
    """

    def __init__(
        self,
        units: Sequence[str],
        usual_s: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        usual_s = {unit: s for unit, s in (usual_s or {}).items() if s >= 0}
        known = [max(usual_s[unit], MIN_WEIGHT_S) for unit in units if unit in usual_s]
        fallback = sum(known) / len(known) if known else 1.0
        self.by_history = bool(known)
        self.known = len(known)
        self.total = len(units)
        self.usual_s = usual_s
        self._weight = {unit: max(usual_s.get(unit, fallback), MIN_WEIGHT_S) for unit in units}
        self._total_weight = sum(self._weight.values())
        self._done_weight = 0.0
        self.done = 0
        self._clock = clock
        self._started = clock()

    @property
    def basis(self) -> str:
        """What percent and ETA are weighted by, for the run log."""
        if not self.by_history:
            return "asset counts (no earlier durations recorded)"
        if self.known == self.total:
            return "each asset's last duration"
        return (
            f"each asset's last duration ({self.known} of {self.total} known; the others count as their mean)"
        )

    @property
    def percent(self) -> float:
        return 100.0 * self._done_weight / self._total_weight if self._total_weight else 100.0

    def usual(self, unit: str) -> float | None:
        return self.usual_s.get(unit)

    def eta_s(self) -> float | None:
        """Seconds left: the remaining weight at the pace so far (by history alone before any)."""
        remaining = self._total_weight - self._done_weight
        if self._done_weight > 0:
            return remaining * (self._clock() - self._started) / self._done_weight
        return remaining if self.by_history else None

    def finished(self, unit: str, duration_s: float, rows: int | None = None) -> str:
        """Counts `unit` done; returns its line: `[k/N pct%] <unit> done in X s (rows=…) — ETA …`."""
        self.done += 1
        self._done_weight += self._weight.get(unit, 0.0)
        if self.done == self.total:
            self._done_weight = self._total_weight  # no rounding left over at the end
        return (
            f"{self.position()} {unit} done in {duration_s:.2f} s "
            f"(rows={'-' if rows is None else rows}){self._eta()}"
        )

    def starting(self, unit: str) -> str:
        return f"Executing {unit} {self.position()}"

    def running(self, unit: str, running_s: float) -> str:
        """`running <unit> [k/N pct%] — 31 s so far (usually 2m05s) — ETA …`."""
        usual = self.usual(unit)
        usually = f" (usually {duration(usual)})" if usual is not None else ""
        return f"running {unit} {self.position()} — {duration(running_s)} so far{usually}{self._eta()}"

    def summary(self) -> str:
        """A progress line with no asset, for a heartbeat while quick nodes finish."""
        return f"{self.position()} assets done{self._eta()}"

    def position(self) -> str:
        return f"[{self.done}/{self.total} {self.percent:.0f}%]"

    def _eta(self) -> str:
        eta = self.eta_s()
        return "" if eta is None or self.done == self.total else f" — ETA {duration(eta)}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def usual_durations(context, keys: Sequence[AssetKey]) -> dict[AssetKey, float]:
    """Each asset's duration at its last materialization, as Dagster stored it (one query)."""
    usual: dict[AssetKey, float] = {}
    try:
        records = context.instance.get_asset_records(list(keys))
    except Exception:  # progress must never fail a run: fall back to counting assets
        logger.debug("could not read earlier durations", exc_info=True)
        return usual
    for record in records:
        entry = record.asset_entry.last_materialization
        materialization = entry.asset_materialization if entry else None
        value = materialization.metadata.get("duration_s") if materialization else None
        seconds = getattr(value, "value", value)
        if isinstance(seconds, (int, float)):
            usual[record.asset_entry.asset_key] = float(seconds)
    return usual
