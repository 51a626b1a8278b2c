"""What a materialization says about its value: rows, columns, where it is stored, a preview."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd

from orchestration.storage.store import StoredValue

PREVIEW_ROWS = 5
PREVIEW_CELL = 40
PREVIEW_TEXT = 600


def materialization_metadata(value: Any, stored: StoredValue, duration_s: float, name: str) -> dict[str, Any]:
    """`name` is the asset's node name, which is also the one column of a stored Series."""
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(stored.path)),
        "format": stored.format,
        "size_bytes": stored.size_bytes,
        "duration_s": round(duration_s, 4),
        "python_type": f"{type(value).__module__}.{type(value).__qualname__}",
    }
    if isinstance(value, pd.DataFrame):
        metadata["dagster/row_count"] = len(value)
        metadata["dagster/column_schema"] = table_schema(value)
        metadata["preview"] = dg.MetadataValue.md(markdown_table(value.head(PREVIEW_ROWS)))
    elif isinstance(value, pd.Series):
        metadata["dagster/row_count"] = len(value)
        metadata["dagster/column_schema"] = dg.TableSchema(columns=[dg.TableColumn(name, str(value.dtype))])
        metadata["preview"] = dg.MetadataValue.md(markdown_table(value.head(PREVIEW_ROWS).to_frame()))
    else:
        metadata["preview"] = dg.MetadataValue.md(f"```\n{_short_text(value)}\n```")
    return metadata


def table_schema(frame: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
    )


def markdown_table(frame: pd.DataFrame) -> str:
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in frame.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= PREVIEW_CELL else text[: PREVIEW_CELL - 1] + "…"


def _short_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= PREVIEW_TEXT else text[: PREVIEW_TEXT - 1] + "…"
