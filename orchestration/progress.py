"""Per-asset progress of one run: `[k/N pct%] <asset> done in X s (rows=…) — ETA …`.

N counts only the assets this run computes, so the run reaches 100% (Hamilton's own progress bars
count overridden nodes, which never run). `RateLimited` thins the updates for notifiers like Slack.
A callback that fails never fails the run: its first failure in a step leaves one warning in the
run log naming what was not delivered (a callback's `description`, else its name), never the
error's text unless it is a `NotDelivered`, whose text holds no secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import dagster as dg

from orchestration.alerts import NotDelivered

ProgressCallback = Callable[[int, float, str], None]
logger = logging.getLogger(__name__)


class AssetProgress:
    """Counts finished assets, estimates the time left, and tells the callbacks."""

    def __init__(
        self,
        total: int,
        callbacks: Sequence[ProgressCallback] = (),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = total
        self.done = 0
        self.callbacks = list(callbacks)
        self._clock = clock
        self._started = clock()
        self._failing: set[int] = set()  # callbacks that failed in this step (and were reported)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def advance(self, asset: str, duration_s: float, rows: int | None = None) -> str:
        self.done += 1
        elapsed = self._clock() - self._started
        remaining = elapsed / self.done * (self.total - self.done)
        line = (
            f"[{self.done}/{self.total} {self.percent:.0f}%] {asset} done in {duration_s:.2f} s "
            f"(rows={'-' if rows is None else rows}) — ETA {_duration(remaining)}"
        )
        for index, callback in enumerate(self.callbacks):
            try:
                callback(self.done, self.percent, line)
            except Exception as error:  # noqa: BLE001 - a notifier must never fail the run
                self._failed(index, callback, error)
        return line

    def _failed(self, index: int, callback: ProgressCallback, error: Exception) -> None:
        """One warning in the run log per failing callback and step; later failures are debug."""
        reason = str(error) if isinstance(error, NotDelivered) else type(error).__name__
        if index in self._failing:
            logger.debug("%s: not delivered again (%s)", describe(callback), reason)
            return
        self._failing.add(index)
        # The step's thread calls this: Dagster puts its loggers' records into the run log.
        dg.get_dagster_logger("progress").warning(
            f"{describe(callback)}: not delivered ({reason}); the run goes on, and further failures "
            "in this step are not logged."
        )


class RateLimited:
    """A progress callback that passes on the first and the final (100%) update of a step, and in
    between at most one per `min_interval_s` that also advanced `min_percent` since the last one
    passed: a 1,000-asset run sends a handful of messages, not 1,000."""

    def __init__(
        self,
        callback: ProgressCallback,
        min_interval_s: float = 60.0,
        min_percent: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.callback = callback
        self.min_interval_s = min_interval_s
        self.min_percent = min_percent
        self._clock = clock
        self._last: tuple[float, float] | None = None  # when, and at what percent, one last passed

    @property
    def description(self) -> str:
        return describe(self.callback)

    def __call__(self, step: int, percent: float, message: str) -> None:
        now = self._clock()
        if not (step == 1 or percent >= 100.0 or self._due(now, percent)):
            return
        self._last = (now, percent)  # set first: a failing callback is not retried sooner
        self.callback(step, percent, message)

    def _due(self, now: float, percent: float) -> bool:
        if self._last is None:
            return True
        last_time, last_percent = self._last
        return now - last_time >= self.min_interval_s and percent - last_percent >= self.min_percent


def describe(callback: ProgressCallback) -> str:
    """What a callback delivers to, for messages: its `description`, else its name."""
    name = getattr(callback, "__qualname__", type(callback).__name__)
    return getattr(callback, "description", None) or f"Progress callback {name}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
