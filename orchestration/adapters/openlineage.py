"""`OpenLineageAdapter`: the Dagster path's OpenLineage events for a plain Hamilton driver.

    dr = driver.Builder().with_modules(m).with_adapters(OpenLineageAdapter()).build()

Each `execute` (or `materialize`) is one OpenLineage run of job `<dataflow>`, and each asset it
computes (a node as `hamilton_assets` would show it: column and check nodes belong to their asset)
is a child run of job `<dataflow>.<asset>`, with `parent` and `root` facets, the same builders,
facets and column lineage as in Dagster (`lineage.events`, `column_lineage`). Nothing stores the
values, so an asset's dataset is named `hamilton://<dataflow>` / `<asset>`; files a node reads
(`@load_from`, or `DataFrame.attrs['source_files']`) are its inputs, and each `@save_to` or
`to.*` materializer is a run of its own whose output is the file it wrote.

Events go to the same durable spool as in Dagster and are delivered in the background, so a dead
or slow backend never slows or fails the driver. Before the process exits it waits at most
`wait_s` for delivery; what is left stays spooled for the next run or
`python -m orchestration.lineage.cli flush`. Configuration is openlineage-python's own, as in
Dagster (docs/lineage.md). No Dagster import.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hamilton.lifecycle import GraphExecutionHook, NodeExecutionHook
from openlineage.client import event_v2 as ol
from openlineage.client import facet_v2 as facets

from orchestration import column_lineage
from orchestration.adapters.classified import ClassifiedGraph
from orchestration.dataflow import Dataflow
from orchestration.lineage import client, events
from orchestration.lineage.delivery import LineageDelivery

logger = logging.getLogger(__name__)
LOADER_TAG = "hamilton.data_loader"  # `@load_from` nodes: (value, metadata) with the file read
SAVER_TAG = "hamilton.data_saver"  # `@save_to` and `to.*` nodes: metadata of the file written
OWNERS_TAG = "dagster.owners"  # the same tag the Dagster path reads


@dataclass
class _Execution:
    """What the adapter keeps while one `execute` runs."""

    run: events.LineageRun
    parts: events.SerializedParts
    target: LineageDelivery
    assets: set[str]  # the assets this execution computes
    started: dict[str, datetime] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)  # asset -> its columns, once known
    files_read: dict[str, list[str]] = field(default_factory=dict)
    assertions: dict[str, list] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)


class OpenLineageAdapter(ClassifiedGraph, GraphExecutionHook, NodeExecutionHook):
    """Emits OpenLineage events for every execution of the driver and every asset it computes.

    `name` is the dataflow's (default: its modules' short names, as `hamilton_assets` names it);
    `wait_s` bounds how long the process waits for delivery when it exits.
    """

    def __init__(self, name: str | None = None, wait_s: float = 3.0):
        if wait_s < 0:
            raise ValueError(f"OpenLineageAdapter: wait_s must be 0 seconds or more, got {wait_s!r}.")
        super().__init__(name)
        self.wait_s = wait_s
        self._jobs: dict[str, events.AssetJob] = {}
        self._jobs_of: Dataflow | None = None
        self._executions: dict[str, _Execution] = {}
        self._lock = threading.Lock()  # node hooks may come from several threads at once

    def __reduce__(self):
        return (type(self), (self.name, self.wait_s))

    def run_before_graph_execution(
        self,
        *,
        run_id: str,
        inputs: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        execution_path: Collection[str] = (),
        **future_kwargs: Any,
    ) -> None:
        try:
            self._begin(run_id, {**(inputs or {}), **(overrides or {})}, execution_path)
        except Exception:  # lineage must never fail the driver
            logger.warning("OpenLineage: no events for execution %s", run_id, exc_info=True)

    def _begin(self, run_id: str, given: dict[str, Any], execution_path: Collection[str]) -> None:
        if not client.enabled() or (dataflow := self.classified()) is None:
            return
        run = events.LineageRun(
            run_id=run_id, job_name=dataflow.name, created=datetime.now(UTC), engine="Hamilton"
        )
        execution = _Execution(
            run,
            events.SerializedParts(run),
            client.delivery(),
            {name for name in execution_path if name in dataflow.assets and name not in given},
        )
        for name, value in given.items():  # what overrides and inputs stand for, for column lineage
            columns = column_lineage.output_columns(name, value)
            if columns:
                execution.columns[name] = columns
        self._executions[run_id] = execution
        client.deliver_before_exit(self.wait_s)
        execution.target.emit(events.run_event(ol.RunState.START, run))

    def run_before_node_execution(self, *, node_name: str, run_id: str, **future_kwargs: Any) -> None:
        if (execution := self._executions.get(run_id)) is None or self._dataflow is None:
            return
        asset = self._dataflow.asset_of(node_name)
        if asset in execution.assets:
            with self._lock:
                execution.started.setdefault(asset, datetime.now(UTC))

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        node_tags: Mapping[str, Any],
        node_kwargs: Mapping[str, Any] | None = None,
        result: Any = None,
        error: Exception | None = None,
        success: bool = True,
        run_id: str,
        **future_kwargs: Any,
    ) -> None:
        if (execution := self._executions.get(run_id)) is None or (dataflow := self._dataflow) is None:
            return
        try:
            asset = dataflow.asset_of(node_name)
            if not success:
                if asset in execution.assets:
                    self._end(execution, asset, ol.RunState.FAIL, error=error)
            elif node_tags.get(SAVER_TAG):
                self._saved(execution, node_name, node_kwargs or {}, result)
            elif node_tags.get(LOADER_TAG) and asset is not None:
                execution.files_read.setdefault(asset, []).extend(_file_of(result))
            elif node_name in dataflow.checks:
                execution.assertions.setdefault(asset or "", []).append(
                    _assertion(dataflow, node_name, result)
                )
            elif node_name in execution.assets:
                self._completed(execution, node_name, result)
        except Exception:  # lineage must never fail the driver
            logger.warning("OpenLineage: no event for node %s", node_name, exc_info=True)

    def run_after_graph_execution(
        self, *, run_id: str, success: bool = True, error: Exception | None = None, **future_kwargs: Any
    ) -> None:
        if (execution := self._executions.pop(run_id, None)) is None:
            return
        try:
            unfinished = "the execution ended before this asset finished"
            for asset in sorted(execution.started.keys() - execution.ended):  # e.g. a node interrupted
                self._end(execution, asset, ol.RunState.FAIL, error=unfinished)
            state = ol.RunState.COMPLETE if success else ol.RunState.FAIL
            execution.target.emit(events.run_event(state, execution.run, error if not success else None))
        except Exception:  # lineage must never fail the driver
            logger.warning("OpenLineage: no end event for execution %s", run_id, exc_info=True)

    # -- events ----------------------------------------------------------------------------------

    def _completed(self, execution: _Execution, asset: str, value: object) -> None:
        dataflow = self._dataflow
        assert dataflow is not None
        upstream = dataflow.assets[asset].upstream
        datasets = {name: events.named_dataset(dataflow.name, name) for name in upstream}
        lineage = column_lineage.derive(dataflow, asset, value, execution.columns.get)
        if columns := column_lineage.output_columns(asset, value):
            execution.columns[asset] = columns
        inputs = [events.input_dataset(dataset) for dataset in datasets.values()]
        files = execution.files_read.pop(asset, [])
        if not upstream:  # pandas carries `attrs` downstream: only a source node read them
            files += events.source_files(value)
        inputs += [events.input_file(path) for path in dict.fromkeys(files)]
        output = events.output_dataset(
            events.named_dataset(dataflow.name, asset),
            value,
            None,
            lineage,
            datasets,
            assertions=execution.assertions.pop(asset, []),
            column=asset,
        )
        self._end(execution, asset, ol.RunState.COMPLETE, inputs, [output], value=value)

    def _saved(
        self, execution: _Execution, node_name: str, read: Mapping[str, Any], metadata: object
    ) -> None:
        """A materializer's own run: the assets it saved (its arguments) in, the file it wrote out.
        `to.*` materializers are not in the driver's graph, so their arguments are what says."""
        dataflow = self._dataflow
        assert dataflow is not None
        execution.started.setdefault(node_name, datetime.now(UTC))
        saved = dict.fromkeys(
            asset for name in sorted(read) if (asset := dataflow.asset_of(name)) is not None
        )
        inputs = [events.input_dataset(events.named_dataset(dataflow.name, asset)) for asset in saved]
        outputs = [events.input_file(path) for path in _file_of(metadata)]
        self._end(execution, node_name, ol.RunState.COMPLETE, inputs, outputs)

    def _end(
        self,
        execution: _Execution,
        name: str,
        state: ol.RunState,
        inputs=(),
        outputs=(),
        error=None,
        value=None,
    ):
        """START (at the time the asset's first node started) and the end, spooled in one commit;
        once per asset, whichever thread gets here first."""
        with self._lock:
            if name in execution.ended:
                return
            execution.ended.add(name)
        job = self._job(name)
        started = execution.started.get(name)
        node = events.node_facet((datetime.now(UTC) - started).total_seconds(), value) if started else None
        end = events.asset_event(state, execution.parts, job, inputs, outputs, error, node=node)
        client.emit_all([(events.start_of(end, started), None, None), (end, None, None)], execution.target)

    def _job(self, name: str) -> events.AssetJob:
        if self._jobs_of is not self._dataflow:  # a rebuilt driver: its jobs are described anew
            self._jobs, self._jobs_of = {}, self._dataflow
        if name not in self._jobs:
            dataflow = self._dataflow
            assert dataflow is not None
            node = dataflow.nodes.get(name)
            fn = node.originating_functions[0] if node is not None and node.originating_functions else None
            code = getattr(fn, "__code__", None)
            tags = node.tags if node is not None else {}
            self._jobs[name] = events.AssetJob(
                name=f"{dataflow.name}.{name}",
                asset_key=name,
                source_file=code.co_filename if code else None,
                source_line=code.co_firstlineno if code else None,
                description=((node.documentation if node is not None else "") or "").strip() or None,
                owners=tuple(o.strip() for o in str(tags.get(OWNERS_TAG, "")).split(",") if o.strip()),
                tags={
                    key: value
                    for key, value in tags.items()
                    if isinstance(value, str)
                    and key != "module"
                    and not key.startswith(("hamilton.", "dagster."))
                },
            )
        return self._jobs[name]


def _assertion(dataflow: Dataflow, node_name: str, result: object):
    check = dataflow.checks[node_name]
    return facets.data_quality_assertions_dataset.Assertion(
        assertion=check.check_name,
        success=bool(getattr(result, "passes", True)),
        severity="error" if check.blocking else "warn",
        description=check.description,
    )


def _file_of(metadata: object) -> list[str]:
    """The file a loader read or a saver wrote, from Hamilton's metadata (`file_metadata.path`);
    a loader returns (value, metadata)."""
    if isinstance(metadata, tuple) and len(metadata) == 2:
        metadata = metadata[1]
    path = ((metadata or {}).get("file_metadata") or {}).get("path") if isinstance(metadata, dict) else None
    return [_absolute(str(path))] if path else []


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())
