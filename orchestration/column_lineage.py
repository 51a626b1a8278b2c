"""Column lineage derived from the Hamilton graph (rules in docs/column_lineage_specification.md).

Hamilton's column-level nodes say exactly where a column comes from: an `@extract_columns` child
is one column of its parent, and a function over Series names its input columns as parameters.
Functions over whole DataFrames are opaque; for them a column is traced by name when an input has
a column of the same name, and otherwise to every column of every input (marked as such).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from orchestration.dataflow import Dataflow, dependencies

if TYPE_CHECKING:
    from dagster import AssetKey, TableColumnLineage

IDENTITY = "IDENTITY"  # a Series parameter placed into the frame under its own name
TRANSFORMATION = "TRANSFORMATION"  # computed from exactly these columns (Hamilton column nodes)
INFERRED = "INFERRED"  # an opaque whole-frame function; an input column has the same name
UNKNOWN = "UNKNOWN"  # an opaque whole-frame function: every input column may contribute


@dataclass(frozen=True)
class ColumnSource:
    asset: str  # Hamilton node name of the upstream asset
    column: str
    how: str  # IDENTITY, TRANSFORMATION, INFERRED or UNKNOWN


def output_columns(asset: str, value: object) -> list[str] | None:
    """The columns of a stored value: a frame's columns, or one column named after a Series asset."""
    if isinstance(value, pd.DataFrame):
        return [str(c) for c in value.columns]
    if isinstance(value, pd.Series):
        return [asset]
    return None


def function_node(dataflow: Dataflow, asset: str) -> str:
    """The node that runs the user's function (`<name>_raw` under `@check_output`)."""
    raw = f"{asset}_raw"
    if dataflow.owner.get(raw) == asset:
        return raw
    return asset


def derive(
    dataflow: Dataflow,
    asset: str,
    value: object,
    columns_of: Callable[[str], Sequence[str] | None],
) -> dict[str, list[ColumnSource]]:
    """Output column -> the upstream columns it comes from; empty for non-tabular values."""
    outputs = output_columns(asset, value)
    if not outputs:
        return {}
    named: dict[str, list[ColumnSource]] = {}  # parameter name -> the column(s) it stands for
    frames: dict[str, list[str]] = {}  # whole-DataFrame inputs -> their columns
    for parameter in sorted(dependencies(dataflow.nodes[function_node(dataflow, asset)])):
        parent = dataflow.parent_of.get(parameter)
        if parent is not None:
            named[parameter] = [ColumnSource(parent, parameter, TRANSFORMATION)]
            continue
        if parameter not in dataflow.assets:
            continue  # external inputs and scalars carry no columns
        columns = list(columns_of(parameter) or [])
        if columns == [parameter]:
            named[parameter] = [ColumnSource(parameter, parameter, TRANSFORMATION)]
        elif columns:
            frames[parameter] = columns

    lineage: dict[str, list[ColumnSource]] = {}
    for column in outputs:
        if column in named and column != asset:
            lineage[column] = [_as(source, IDENTITY) for source in named[column]]
            continue
        by_name = [ColumnSource(frame, column, INFERRED) for frame, cols in frames.items() if column in cols]
        if by_name:
            lineage[column] = by_name
            continue
        if frames:
            lineage[column] = [
                *(source for sources in named.values() for source in sources),
                *(ColumnSource(frame, c, UNKNOWN) for frame, cols in frames.items() for c in cols),
            ]
        else:
            lineage[column] = [source for sources in named.values() for source in sources]
    return {column: sources for column, sources in lineage.items() if sources}


def _as(source: ColumnSource, how: str) -> ColumnSource:
    return ColumnSource(source.asset, source.column, how)


def as_dagster_metadata(
    lineage: Mapping[str, list[ColumnSource]], key_of: Callable[[str], AssetKey]
) -> TableColumnLineage:
    """Dagster's `dagster/column_lineage` value (the run log shows it; Dagster+ draws it)."""
    import dagster as dg

    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=key_of(s.asset), column_name=s.column) for s in sources]
            for column, sources in lineage.items()
        }
    )
