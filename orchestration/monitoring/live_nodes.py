"""Which nodes of a step are running, and when one of them is due to be shown.

The step's own thread, which waits for Hamilton's results anyway, records each node's start (as
Hamilton's thread timed it) and asks `due` whenever its wait times out. A node still
running after `live_after_s` is due once, then every `heartbeat_s`; a node that ends sooner is never
shown, so quick nodes cost no run-log event. `next_wait_s` says how long the step's thread may wait
for the next result before it must look again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestration.monitoring.progress import ProgressSettings


@dataclass
class RunningNode:
    unit: str  # how progress names it: the asset key (with its partition in a range run)
    asset: str  # the asset's node
    started: float
    shown: int = 0  # how often it was shown: 0 until it passed the threshold

    def running_s(self, now: float) -> float:
        return now - self.started


class NodeWatch:
    """The running nodes of one step (several with `max_parallel_nodes`)."""

    def __init__(self, settings: ProgressSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._running: dict[str, RunningNode] = {}

    def started(self, unit: str, asset: str, at: float) -> None:
        """`at` is the node's start on this watch's clock."""
        self._running[unit] = RunningNode(unit, asset, at)

    def ended(self, unit: str) -> RunningNode | None:
        """Forgets the node; returns it (its `shown` says whether a person was told it ran)."""
        return self._running.pop(unit, None)

    def running(self) -> list[RunningNode]:
        """Nodes past the threshold, oldest first."""
        return [node for node in self._running.values() if node.shown]

    def due(self) -> list[tuple[RunningNode, float]]:
        """Nodes to show now, with how long each has run; each is shown once per due time."""
        now = self._clock()
        shown = []
        for node in self._running.values():
            if node.running_s(now) >= self._show_after(node):
                node.shown += 1
                shown.append((node, node.running_s(now)))
        return shown

    def next_wait_s(self) -> float | None:
        """How long the step's thread may wait for a result before a node can be due. A node's
        start arrives as a result too, so with nothing running it waits for one."""
        now = self._clock()
        waits = [self._show_after(node) - node.running_s(now) for node in self._running.values()]
        return max(min(waits), 0.0) if waits else None

    def _show_after(self, node: RunningNode) -> float:
        return self.settings.live_after_s + node.shown * self.settings.heartbeat_s
