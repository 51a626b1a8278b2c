"""The object Dagster calls to run a selection of a dataflow's assets inside one step.

Only the Hamilton nodes the selection needs execute: upstream assets outside the selection are
loaded from the value store and handed to Hamilton as overrides, so they are never recomputed
(`execution.plan`). The step itself, from Hamilton's results to Dagster's, is `execution.step`.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from orchestration.dataflow import Dataflow
from orchestration.execution.dagster_patches import install_step_patches
from orchestration.execution.hamilton_stream import NodeResult, ResultStream
from orchestration.execution.plan import plan_selection
from orchestration.execution.step import Step
from orchestration.observers import StepObserver
from orchestration.options import StepOptions
from orchestration.runtime import HamiltonRuntime
from orchestration.translator import HamiltonTranslator


class StepRunner:
    """Executes selections of one multi-asset of a dataflow (several share the dataflow)."""

    def __init__(
        self,
        dataflow: Dataflow,
        stream: ResultStream,
        keys: Mapping[str, dg.AssetKey],
        upstream_inputs: Mapping[str, dg.AssetKey],
        fixed_inputs: Mapping[str, Any],
        translator: HamiltonTranslator,
        options: StepOptions,
        runtime_key: str,
        observers: Sequence[StepObserver],
    ):
        self.dataflow = dataflow
        self.stream = stream
        self.keys = keys
        self.nodes_by_key = {key: name for name, key in keys.items()}
        self.upstream_inputs = upstream_inputs
        self.fixed_inputs = fixed_inputs
        self.translator = translator
        self.options = options
        self.runtime_key = runtime_key
        self.observers = tuple(observers)

    @functools.cached_property
    def key_strings(self) -> dict[str, str]:
        """Each asset's key as people read it (built at the first step, not at definitions load)."""
        return {name: key.to_user_string() for name, key in self.keys.items()}

    def run(self, context) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Computes the assets Dagster selected, with the runtime settings of this run."""
        _exit_with_run_worker()
        install_step_patches()
        selected = [self.nodes_by_key[key] for key in context.selected_asset_keys]
        runtime: HamiltonRuntime = getattr(context.resources, self.runtime_key)
        settings = runtime.settings(self.options.store_root, self.options.progress_settings)
        step = Step(self, context, plan_selection(self.dataflow, selected), settings)
        step.notify(StepObserver.step_started)
        success = False
        try:
            yield from step.execute()
            success = True
        finally:
            step.close()
            step.notify(StepObserver.step_finished, success)

    def describe_failure(self, failed: NodeResult) -> str:
        """`Hamilton node 'x' (asset y) failed: ValueError: boom`."""
        asset = self.dataflow.asset_of(failed.node_name)
        where = f" (asset {self.keys[asset].to_user_string()})" if asset else ""
        error = failed.error
        return f"Hamilton node '{failed.node_name}'{where} failed: {type(error).__name__}: {error}"

    def failure(self, failed: NodeResult | None, error: BaseException) -> dg.Failure:
        if failed is None or failed.error is None:
            return dg.Failure(
                description=f"Hamilton could not run dataflow '{self.dataflow.name}': "
                f"{type(error).__name__}: {error}",
                metadata={"traceback": dg.MetadataValue.text(_traceback(error))},
            )
        text = _traceback(failed.error)
        return dg.Failure(
            description=f"{self.describe_failure(failed)}\n\n{text}",
            metadata={"node": failed.node_name, "traceback": dg.MetadataValue.text(text)},
        )


_watching_parent = False


def _exit_with_run_worker() -> None:
    """A step in a process of its own (multiprocess executor) ends when its run worker dies: as an
    orphan it would go on storing values and reporting success for a run already marked failed."""
    global _watching_parent
    if _watching_parent or multiprocessing.parent_process() is None:
        return
    _watching_parent = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run-worker", daemon=True).start()


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()
