"""A tqdm bar over the assets a step computes, for runs started from a terminal.

The total counts only the assets the step computes, as the `[k/N pct%]` log lines do, so the bar
ends at 100% (Hamilton's `h_tqdm` bar counts every node it runs: columns, checks, internals).

Dagster captures a step's stderr into its compute log and mirrors that file to the terminal that
started the run, so the step's stderr is never a terminal itself. The bar is therefore shown when
the runtime's `progress_bar` is on (`PIPELINE_PROGRESS_BAR=1` when unset), or, when neither is set,
if stdin is a terminal (Dagster leaves it alone) and the run is not under `dagster dev` (there a
run's output belongs in the UI's logs). Off (`PIPELINE_PROGRESS_BAR=0`) means off everywhere.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO

import tqdm

from orchestration.observers import Materialized, StepInfo, StepObserver

REDRAW_S = 1.0


class AssetBar:
    """A bar counting assets, redrawn every second: its elapsed time stays live during a long node,
    and it reappears below log lines printed over it."""

    def __init__(self, total: int, desc: str):
        self._bar = tqdm.tqdm(total=total, desc=desc, unit="asset", file=_LineStart(sys.stderr))
        self._running: dict[str, None] = {}  # in start order; several with max_parallel_nodes
        self._closed = threading.Event()
        self._redrawing = threading.Thread(target=self._redraw, name=f"progress-{desc}", daemon=True)
        self._redrawing.start()

    def _redraw(self) -> None:
        while not self._closed.wait(REDRAW_S):
            self._bar.refresh()

    def running(self, asset: str) -> None:
        """Shows `asset` among the running nodes (on the next redraw: this runs on Hamilton's thread)."""
        self._running[asset] = None
        self._show_running()

    def ended(self, asset: str, done: bool) -> None:
        self._running.pop(asset, None)
        self._show_running()
        if done:
            self._bar.update()

    def _show_running(self) -> None:
        names = list(self._running)
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        self._bar.set_postfix_str(f"running {shown}" if names else "", refresh=False)

    def close(self, outcome: str) -> None:
        self._closed.set()
        self._redrawing.join()  # no frame after the last one
        self._bar.set_postfix_str(outcome, refresh=False)
        self._bar.close()


class _LineStart:
    """Leaves the cursor at the start of the bar's line, so a log line printed next overwrites the
    bar instead of being glued to its end."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, text: str) -> None:
        self._stream.write(text + "\r" if text else text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class TerminalProgress(StepObserver):
    """One bar per step on the step's stderr, advanced as each asset is materialized; its postfix
    names the node(s) running now."""

    def __init__(self):
        self._bars: dict[str, AssetBar] = {}

    def step_started(self, step: StepInfo) -> None:
        started_in_terminal = os.isatty(0) and not os.environ.get("DAGSTER_IS_DEV_CLI")
        if not step.settings.shows_progress_bar(started_in_terminal):
            return
        total = len(step.assets) * max(len(step.partitions), 1)
        self._bars[step.run_id] = AssetBar(total, step.dataflow.name)

    def asset_started(self, step: StepInfo, asset: str) -> None:
        if (bar := self._bars.get(step.run_id)) is not None:
            bar.running(asset)

    def asset_materialized(self, step: StepInfo, asset: str, materialized: Materialized) -> None:
        if (bar := self._bars.get(step.run_id)) is not None:
            bar.ended(asset, done=True)

    def asset_failed(self, step: StepInfo, asset: str, error: BaseException) -> None:
        if (bar := self._bars.get(step.run_id)) is not None:
            bar.ended(asset, done=False)

    def step_finished(self, step: StepInfo, success: bool) -> None:
        if (bar := self._bars.pop(step.run_id, None)) is not None:
            bar.close("done" if success else "failed")
