"""`StepOptions`: how a dataflow's steps run, as one typed, frozen object.

`hamilton_assets` and `hamilton_assets_by_group` take it as `options=`, or its fields as keyword
arguments (`hamilton_assets(module, retry_policy=...)`), so the two entry points share one
definition of every option and a project can keep its options in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from orchestration.errors import DataflowError
from orchestration.monitoring.callbacks import ProgressCallback
from orchestration.monitoring.progress import ProgressSettings
from orchestration.observers import StepObserver
from orchestration.runtime import HamiltonRuntime
from orchestration.storage.formats import ValueFormat


@dataclass(frozen=True)
class StepOptions:
    """How each step of a dataflow runs. Every field is optional.

    Storage:
      - `store_root`: a folder or URL fixed at definition time; prefer `runtime.store_url`, read
        when the step runs (by default `$PIPELINE_STORE_URL`, else `$PIPELINE_DATA_DIR/assets`).
      - `formats`: `ValueFormat`s tried before the built-in ones (parquet, pickle).

    Partitions:
      - `partitions_def`: each partition is stored separately.
      - `partition_input`: the Hamilton input that receives the partition key (e.g. `sales_date`).
      - `backfill_policy`: with `BackfillPolicy.single_run()` a backfill computes its whole range in
        one step.

    Dagster op options, passed through: `retry_policy`, `pool`, `op_tags`.

    Execution: `max_parallel_nodes` lets Hamilton run up to that many independent nodes of a step at
    once, in threads; worth it for nodes that wait on I/O or release the GIL; one at a time by
    default.

    Watching:
      - `progress_callbacks` are called `(asset, percent, message)` as nodes start, run long and
        end, off the step's thread.
      - `progress_settings` fixes when a running node is named and how often; by default
        `runtime` decides, at run time.
      - `observers` follow the step (see `StepObserver`); they run after the built-in ones:
        lineage (off with `OPENLINEAGE_DISABLED=true`), the terminal bar (the runtime's
        `progress_bar`) and metrics (on with the runtime's `pushgateway_url`).
      - `runtime`: the `HamiltonRuntime` resource the step reads when it runs; by default one
        whose every field falls back to the environment. Its fields, when set, win over
        `store_root` and `progress_settings`.
    """

    store_root: str | None = None
    formats: Sequence[ValueFormat] = ()
    partitions_def: dg.PartitionsDefinition | None = None
    partition_input: str | None = None
    backfill_policy: dg.BackfillPolicy | None = None
    retry_policy: dg.RetryPolicy | None = None
    pool: str | None = None
    op_tags: Mapping[str, Any] | None = None
    max_parallel_nodes: int | None = None
    progress_callbacks: Sequence[ProgressCallback] = ()
    progress_settings: ProgressSettings | None = None
    observers: Sequence[StepObserver] = ()
    runtime: HamiltonRuntime | None = None

    def __post_init__(self) -> None:
        for name in ("formats", "progress_callbacks", "observers"):  # a list given stays unshared
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.op_tags is not None:
            object.__setattr__(self, "op_tags", dict(self.op_tags))
        if self.max_parallel_nodes is not None and self.max_parallel_nodes < 1:
            raise DataflowError(
                f"max_parallel_nodes={self.max_parallel_nodes!r}: give a number of nodes of 1 or "
                "more, or leave it unset to run one node at a time."
            )
        for observer in self.observers:
            if not isinstance(observer, StepObserver):
                raise DataflowError(
                    f"observers: {observer!r} is not a StepObserver. Fix: subclass "
                    "orchestration.StepObserver and override the hooks you need."
                )

    @classmethod
    def combine(cls, options: StepOptions | None, keywords: Mapping[str, Any], caller: str) -> StepOptions:
        """`options` (or the defaults) with `keywords` replacing its fields; an unknown keyword is
        refused with the list of the ones there are."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise TypeError(
                f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}. Step options "
                f"are: {', '.join(sorted(known))} (see orchestration.StepOptions)."
            )
        return dataclasses.replace(options or cls(), **keywords)
