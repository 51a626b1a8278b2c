"""OpenLineage events for Dagster runs, plain Hamilton executions and Hamilton assets (naming
and facets: docs/lineage.md).

- The Dagster run (or, without Dagster, the Hamilton execution) is one OpenLineage run of job
  `<Dagster job name>` (or `<dataflow>`).
- Each asset is its own job, `<dataflow>.<asset key parts joined by '.'>`, whose run's `parent`
  (and `root`) facet points at that run.
- RunIds are deterministic UUIDv7s from the run's creation time and id (plus the asset key), so a
  retried step or a re-delivered event never makes a second run.
- Datasets are the stored files: namespace `file`, name = absolute path; a value nothing stores
  is named by its dataflow and node (`named_dataset`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata as package_metadata
from pathlib import Path

import pandas as pd
from openlineage.client import event_v2 as ol
from openlineage.client import facet_v2 as facets
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_static_uuid
from upath import UPath

from orchestration.column_lineage import ColumnSource
from orchestration.values import row_count

DEFAULT_NAMESPACE = "dagster"
FILE_NAMESPACE = "file"
HAMILTON_SCHEME = "hamilton://"  # the namespace of values a plain Hamilton execution keeps in memory
PRODUCER = (
    "https://github.com/hamilton-dagster-pipelines/hamilton-dagster-pipelines"  # on every event and facet
)
RUN_EVENT_SCHEMA = ol.RunEvent._get_schema()  # the spec version openlineage-python writes
# This project's own facet (processing time, records), its JSON Schema shipped beside this module
NODE_FACET_SCHEMA = (
    "https://github.com/hamilton-dagster-pipelines/hamilton-dagster-pipelines/blob/main/"
    "orchestration/lineage/facets/HamiltonNodeRunFacet.json#/$defs/HamiltonNodeRunFacet"
)
TRANSFORMATION_SUBTYPES = {
    "IDENTITY": ("DIRECT", "IDENTITY", "Series placed in the frame under its own name"),
    "TRANSFORMATION": ("DIRECT", "TRANSFORMATION", "computed from these columns (Hamilton column nodes)"),
    "INFERRED": ("DIRECT", "TRANSFORMATION", "same column name in an opaque whole-frame function"),
    "UNKNOWN": ("INDIRECT", None, "opaque whole-frame function: any input column may contribute"),
}


def namespace() -> str:
    """`$OPENLINEAGE_NAMESPACE`, as other OpenLineage integrations read it; else `dagster`."""
    return os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "unknown"


ENGINE_VERSIONS = {"dagster": _version("dagster"), "hamilton": _version("apache-hamilton")}
ADAPTER_VERSION = _version("hamilton-dagster-pipelines")


@dataclass(frozen=True)
class LineageRun:
    """What every event of one run shares: a Dagster run, or a plain Hamilton execution
    (`engine="Hamilton"`), the parent of its asset runs."""

    run_id: str
    job_name: str
    created: datetime
    nominal_start: datetime | None = None
    nominal_end: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    engine: str = "Dagster"  # the processing engine, and the job's integration in upper case

    @property
    def openlineage_run_id(self) -> str:
        return str(generate_static_uuid(self.created, f"dagster-run:{self.run_id}".encode()))

    def asset_run_id(self, asset_key: str) -> str:
        return str(generate_static_uuid(self.created, f"{self.run_id}:{asset_key}".encode()))


@dataclass(frozen=True)
class AssetJob:
    """The asset-level job: its name and the Hamilton function behind it."""

    name: str
    asset_key: str
    source_file: str | None = None
    source_line: int | None = None
    description: str | None = None
    owners: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    partition: str | None = None  # set in a run over a partition range: one asset run per partition

    @cached_property
    def as_json(self) -> str:
        """This job as JSON, kept with its claims in the spool (`from_json` reads it back)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AssetJob:
        fields = json.loads(text)
        return cls(**{**fields, "owners": tuple(fields.get("owners", ()))})

    @property
    def run_key(self) -> str:
        """What makes this asset run unique within its Dagster run."""
        return self.asset_key if self.partition is None else f"{self.asset_key}@{self.partition}"


def run_event(state: ol.RunState, run: LineageRun, error: BaseException | str | None = None) -> ol.RunEvent:
    return ol.RunEvent(
        eventType=state,
        eventTime=_now(),
        run=ol.Run(runId=run.openlineage_run_id, facets=_run_facets(run, run.engine, error)),
        job=ol.Job(
            namespace=namespace(),
            name=run.job_name,
            facets={
                "jobType": facets.job_type_job.JobTypeJobFacet(
                    "BATCH", run.engine.upper(), "JOB", producer=PRODUCER
                )
            },
        ),
        producer=PRODUCER,
    )


class SerializedParts:
    """What every asset event of one run shares, serialized once: the run's facets and
    each asset's job. A run of 5,000 quick assets spools 10,000 events, so this is lineage's hot
    path: events are assembled as dicts here rather than as openlineage-python objects serialized
    afterwards, which was most of its cost; tests validate them against the OpenLineage JSON Schemas."""

    def __init__(self, run: LineageRun):
        self.run = run
        self.run_facets = {name: Serde.to_dict(facet) for name, facet in _asset_run_facets(run, None).items()}
        self._jobs: dict[str, dict] = {}

    def job(self, job: AssetJob) -> dict:
        if job.name not in self._jobs:
            self._jobs[job.name] = {"namespace": namespace(), "name": job.name, "facets": _job_facets(job)}
        return self._jobs[job.name]


def asset_event(
    state: ol.RunState,
    parts: SerializedParts,
    job: AssetJob,
    inputs: Sequence[dict] = (),
    outputs: Sequence[dict] = (),
    error: BaseException | str | None = None,
    at: datetime | None = None,
    node: dict | None = None,
) -> dict:
    """An asset's own run (a child of `parts.run`), serialized; `at` is when it happened
    (default: now); `node` is its `hamilton_node` facet (`node_facet`)."""
    run_facets = parts.run_facets
    if error is not None:
        run_facets = {**run_facets, "errorMessage": Serde.to_dict(_error_facet(error))}
    if node is not None:
        run_facets = {**run_facets, "hamilton_node": node}
    return {
        "eventType": state.value,
        "eventTime": _iso(at) if at else _now(),
        "run": {"runId": parts.run.asset_run_id(job.run_key), "facets": run_facets},
        "job": parts.job(job),
        "inputs": list(inputs),
        "outputs": list(outputs),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
    }


def node_facet(duration_s: float, value: object = None) -> dict:
    """The `hamilton_node` run facet: how long the node ran and how many records it produced."""
    facet: dict = {"_producer": PRODUCER, "_schemaURL": NODE_FACET_SCHEMA}
    facet["processingTimeMs"] = round(max(duration_s, 0.0) * 1000, 3)
    if (rows := row_count(value)) is not None:
        facet["recordsProcessed"] = rows
    return facet


def _asset_run_facets(run: LineageRun, error: BaseException | str | None) -> dict:
    run_facets = _run_facets(run, "Hamilton", error)
    parent_namespace = namespace()
    run_facets["parent"] = facets.parent_run.ParentRunFacet(
        run=facets.parent_run.Run(runId=run.openlineage_run_id),
        job=facets.parent_run.Job(namespace=parent_namespace, name=run.job_name),
        root=facets.parent_run.Root(
            run=facets.parent_run.RootRun(runId=run.openlineage_run_id),
            job=facets.parent_run.RootJob(namespace=parent_namespace, name=run.job_name),
        ),
        producer=PRODUCER,
    )
    return run_facets


def start_of(end_event: dict, at: datetime | None = None) -> dict:
    """The START of the asset run that a serialized COMPLETE or FAIL ends: the same run and job,
    no datasets, no error. Derived rather than built, as a quick asset's START is spooled with its
    end: it halves the cost of its lineage."""
    run = end_event["run"]
    ends = ("errorMessage", "hamilton_node")  # what only the end of a run knows
    run_facets = {name: facet for name, facet in run.get("facets", {}).items() if name not in ends}
    return {
        **end_event,
        "eventType": ol.RunState.START.value,
        "eventTime": _iso(at) if at else _now(),
        "run": {**run, "facets": run_facets},
        "inputs": [],
        "outputs": [],
    }


def dataset_id(path: Path | UPath | str) -> tuple[str, str]:
    """OpenLineage's naming: `file` + absolute path locally, `<scheme>://<bucket>` + key in an
    object store (a store at `PIPELINE_STORE_URL`)."""
    text = str(path)
    scheme, separator, rest = text.partition("://")
    if not separator or scheme == "file":
        return FILE_NAMESPACE, rest if separator else text
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key


def source_files(value: object) -> list[str]:
    """Files a source node read, as it declares them in `DataFrame.attrs['source_files']`."""
    attrs = getattr(value, "attrs", None) or {}
    return [str(Path(p).resolve()) for p in attrs.get("source_files", [])]


def named_dataset(dataflow: str, node: str) -> tuple[str, str]:
    """A value nothing stores (a plain Hamilton execution): namespace `hamilton://<dataflow>`,
    name = the node's, so the same node of the same dataflow is one dataset across runs."""
    return f"{HAMILTON_SCHEME}{dataflow}", node


def input_file(path: Path | str) -> dict:
    """A stored value (or a source file) read by an asset, as a serialized input dataset."""
    return input_dataset(dataset_id(path))


def input_dataset(dataset: tuple[str, str]) -> dict:
    namespace, name = dataset
    return {"namespace": namespace, "name": name}


def output_file(
    path: Path | UPath | str,
    value: object,
    size_bytes: int | None,
    lineage: Mapping[str, Sequence[ColumnSource]],
    input_paths: Mapping[str, str],
    assertions: Sequence[facets.data_quality_assertions_dataset.Assertion] = (),
    column: str | None = None,
) -> dict:
    """The stored value as a serialized output dataset (see `output_dataset`)."""
    sources = {asset: dataset_id(source) for asset, source in input_paths.items()} if lineage else {}
    return output_dataset(dataset_id(path), value, size_bytes, lineage, sources, assertions, column)


def output_dataset(
    dataset: tuple[str, str],
    value: object,
    size_bytes: int | None,
    lineage: Mapping[str, Sequence[ColumnSource]],
    inputs: Mapping[str, tuple[str, str]],
    assertions: Sequence[facets.data_quality_assertions_dataset.Assertion] = (),
    column: str | None = None,
) -> dict:
    """A value as a serialized output dataset: schema, column lineage (`inputs`: each upstream
    asset's dataset), row count and size, checks."""
    dataset_facets: dict[str, facets.DatasetFacet | facets.InputDatasetFacet] = {}
    fields = _schema_fields(value, column)
    if fields:
        dataset_facets["schema"] = facets.schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)
    column_facet = _column_lineage(lineage, inputs)
    if column_facet is not None:
        dataset_facets["columnLineage"] = column_facet
    if assertions:
        dataset_facets["dataQualityAssertions"] = (
            facets.data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=list(assertions), producer=PRODUCER
            )
        )
    statistics = {"rowCount": rows} if (rows := row_count(value)) is not None else {}
    if size_bytes is not None:
        statistics["size"] = size_bytes
    namespace, name = dataset
    return {
        "namespace": namespace,
        "name": name,
        "facets": {key: Serde.to_dict(facet) for key, facet in dataset_facets.items()},
        "outputFacets": {
            "outputStatistics": _facet_json(
                facets.output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
                **statistics,
                fileCount=1,
            )
        },
    }


def _schema_fields(value: object, column: str | None) -> list:
    field_type = facets.schema_dataset.SchemaDatasetFacetFields
    if isinstance(value, pd.DataFrame):
        return [field_type(name=str(c), type=str(t)) for c, t in value.dtypes.items()]
    if isinstance(value, pd.Series) and column:
        return [field_type(name=column, type=str(value.dtype))]
    return []


def _column_lineage(
    lineage: Mapping[str, Sequence[ColumnSource]], inputs: Mapping[str, tuple[str, str]]
) -> facets.column_lineage_dataset.ColumnLineageDatasetFacet | None:
    cl = facets.column_lineage_dataset
    fields = {}
    for column, sources in lineage.items():
        input_fields = []
        for source in sources:
            if source.asset not in inputs:
                continue
            kind, subtype, description = TRANSFORMATION_SUBTYPES[source.how]
            namespace, name = inputs[source.asset]
            input_fields.append(
                cl.InputField(
                    namespace=namespace,
                    name=name,
                    field=source.column,
                    transformations=[
                        cl.Transformation(type=kind, subtype=subtype, description=description, masking=False)
                    ],
                )
            )
        if input_fields:
            fields[column] = cl.Fields(inputFields=input_fields)
    return cl.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER) if fields else None


def _run_facets(run: LineageRun, engine: str, error: BaseException | str | None) -> dict:
    run_facets: dict[str, facets.RunFacet] = {
        "processing_engine": facets.processing_engine_run.ProcessingEngineRunFacet(
            version=ENGINE_VERSIONS[engine.lower()],
            name=engine,
            openlineageAdapterVersion=ADAPTER_VERSION,
            producer=PRODUCER,
        )
    }
    if run.nominal_start is not None:
        run_facets["nominalTime"] = facets.nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=_iso(run.nominal_start),
            nominalEndTime=_iso(run.nominal_end) if run.nominal_end else None,
            producer=PRODUCER,
        )
    if error is not None:
        run_facets["errorMessage"] = _error_facet(error)
    return run_facets


def _error_facet(error: BaseException | str) -> facets.error_message_run.ErrorMessageRunFacet:
    if isinstance(error, BaseException):
        message = f"{type(error).__name__}: {error}"
        stack = "".join(traceback.format_exception(error))
    else:
        message, stack = str(error), None
    return facets.error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="python", stackTrace=stack, producer=PRODUCER
    )


def _job_facets(job: AssetJob) -> dict:
    facet = _facet_json
    job_facets = {
        "jobType": facet(
            facets.job_type_job.JobTypeJobFacet,
            processingType="BATCH",
            integration="HAMILTON",
            jobType="ASSET",
        )
    }
    if job.source_file:
        anchor = f"#L{job.source_line}" if job.source_line else ""
        job_facets["sourceCodeLocation"] = facet(
            facets.source_code_location_job.SourceCodeLocationJobFacet,
            type="file",
            url=f"file://{job.source_file}{anchor}",
            path=job.source_file,
        )
    if job.description:
        job_facets["documentation"] = facet(
            facets.documentation_job.DocumentationJobFacet,
            description=job.description,
            contentType="text/plain",
        )
    if job.owners:
        job_facets["ownership"] = facet(
            facets.ownership_job.OwnershipJobFacet, owners=[{"name": owner} for owner in job.owners]
        )
    if job.tags:
        job_facets["tags"] = facet(
            facets.tags_job.TagsJobFacet,
            tags=[{"key": k, "value": v, "source": "HAMILTON"} for k, v in job.tags.items()],
        )
    return job_facets


def _facet_json(facet_class: type[facets.BaseFacet], **fields) -> dict:
    """A facet as openlineage-python serializes it (its producer and its class's schema URL, then
    the fields), without building the object first: job facets are on lineage's hot path."""
    return {"_producer": PRODUCER, "_schemaURL": facet_class._get_schema(), **fields}


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
