"""Progress callbacks: `callback(step, progress, message)`, called off the compute thread.

`step` is the node (asset) the update is about, `progress` the step's percent done (0-100), and
`message` the line a person would read: `Executing <asset> [k/N pct%]` when a node starts,
`running <asset> …` on heartbeats of a long node, `[k/N pct%] <asset> done in …` when it ends,
and the failure or retry when a node fails.

A slow callback (a notifier waiting on a network) must never delay a node, so a step hands its
updates to one `CallbackThread`, which calls the callbacks in order. At step end the step waits for
it at most `ProgressSettings.callback_wait_s`; what is still queued then is dropped with one
warning. A callback that fails never fails the run: its first failure in a step leaves one warning
in the run log naming what was not delivered (a callback's `description`, else its name), never the
error's text unless it is a `NotDelivered`, whose text holds no secret. `RateLimited` thins the
updates for notifiers like Slack.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from orchestration.errors import NotDelivered

ProgressCallback = Callable[[str, float, str], None]
logger = logging.getLogger(__name__)
_CLOSE = object()


class CallbackThread:
    """Delivers one step's progress updates to its callbacks from a thread of its own.

    `send` only queues, so it is safe from any thread; `warnings()` returns what the step should
    put in its run log (called from the step's thread, where Dagster's run log is).
    """

    def __init__(self, callbacks: Sequence[ProgressCallback], name: str = "progress-callbacks"):
        self.callbacks = list(callbacks)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._failing: set[int] = set()
        self._warnings: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._deliver, name=name, daemon=True)
        if self.callbacks:
            self._thread.start()

    def send(self, step: str, progress: float, message: str) -> None:
        if self.callbacks:
            self._queue.put((step, progress, message))

    def warnings(self) -> list[str]:
        """Warnings not yet taken: one per failing callback and step."""
        with self._lock:
            taken, self._warnings = self._warnings, []
        return taken

    def close(self, wait_s: float) -> None:
        """Lets queued updates go out, waiting at most `wait_s`; then abandons them with a warning."""
        if not self.callbacks:
            return
        self._queue.put(_CLOSE)
        self._thread.join(wait_s)
        if self._thread.is_alive():
            with self._lock:
                self._warnings.append(
                    f"Progress callbacks were still busy {wait_s:g} s after the step ended; the updates "
                    "not yet delivered were dropped (see ProgressSettings.callback_wait_s)."
                )

    def _deliver(self) -> None:
        while (update := self._queue.get()) is not _CLOSE:
            for index, callback in enumerate(self.callbacks):
                try:
                    callback(*update)
                except Exception as error:  # noqa: BLE001 - a notifier must never fail the run
                    self._failed(index, callback, error)

    def _failed(self, index: int, callback: ProgressCallback, error: Exception) -> None:
        reason = str(error) if isinstance(error, NotDelivered) else type(error).__name__
        if index in self._failing:
            logger.debug("%s: not delivered again (%s)", describe(callback), reason)
            return
        self._failing.add(index)
        with self._lock:
            self._warnings.append(
                f"{describe(callback)}: not delivered ({reason}); the run goes on, and further "
                "failures in this step are not logged."
            )


class RateLimited:
    """A progress callback that passes on the first update of a step, the final (100%) one, and in
    between at most one per `min_interval_s` that also advanced `min_percent` since the last one
    passed: a 1,000-asset run sends a handful of messages, not 2,000. A step's first update is
    recognised by its progress going back (a new step starts again from 0%)."""

    def __init__(
        self,
        callback: ProgressCallback,
        min_interval_s: float = 60.0,
        min_percent: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        description: str | None = None,
    ):
        """`description` names what the updates go to in warnings; default: the callback's own."""
        self.callback = callback
        self.min_interval_s = min_interval_s
        self.min_percent = min_percent
        self._clock = clock
        self._last: tuple[float, float] | None = None  # when, and at what percent, one last passed
        self._seen = -1.0  # the progress of the last update seen, passed or not
        self._description = description

    @property
    def description(self) -> str:
        return self._description or describe(self.callback)

    def __call__(self, step: str, progress: float, message: str) -> None:
        now = self._clock()
        new_step = progress < self._seen or self._last is None
        self._seen = progress
        if not (new_step or progress >= 100.0 or self._due(now, progress)):
            return
        self._last = (now, progress)  # set first: a failing callback is not retried sooner
        self.callback(step, progress, message)

    def _due(self, now: float, progress: float) -> bool:
        assert self._last is not None  # a step's first update is passed on without asking
        last_time, last_progress = self._last
        return now - last_time >= self.min_interval_s and progress - last_progress >= self.min_percent


def describe(callback: ProgressCallback) -> str:
    """What a callback delivers to, for messages: its `description`, else its name."""
    name = getattr(callback, "__qualname__", type(callback).__name__)
    return getattr(callback, "description", None) or f"Progress callback {name}"
