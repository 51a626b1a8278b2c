"""Per-asset progress of one run: `[k/N pct%] <asset> done in X s (rows=…) — ETA …`.

N counts only the assets this run computes, so the run reaches 100% (Hamilton's own progress bars
count overridden nodes, which never run). `RateLimited` thins the updates for notifiers like Slack.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

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
        for callback in self.callbacks:
            try:
                callback(self.done, self.percent, line)
            except Exception:  # a notifier must never fail the run
                logger.warning("Progress callback %r failed", callback, exc_info=True)
        return line


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


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
