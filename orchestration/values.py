"""What the project says about a computed value wherever it reports on one (metadata, progress,
metrics, lineage), without importing Dagster."""

from __future__ import annotations

from typing import Any

import pandas as pd


def row_count(value: Any) -> int | None:
    """Rows of a DataFrame or Series; None for any other value."""
    return len(value) if isinstance(value, (pd.DataFrame, pd.Series)) else None
