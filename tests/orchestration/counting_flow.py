"""A small dataflow that records which functions ran, for subset and failure tests."""

import os

import pandas as pd
from hamilton.function_modifiers import extract_columns

CALLS: list[str] = []


def source(rows: int = 4) -> pd.DataFrame:
    """Raw numbers."""
    CALLS.append("source")
    return pd.DataFrame({"x": range(rows), "y": range(rows, 2 * rows)})


@extract_columns("x", "y")
def table(source: pd.DataFrame) -> pd.DataFrame:
    """The numbers, typed."""
    CALLS.append("table")
    return source.astype("int64")


def total(x: pd.Series, y: pd.Series) -> pd.Series:
    """x + y per row."""
    CALLS.append("total")
    if os.environ.get("FAIL_NODE") == "total":
        raise RuntimeError("total cannot be computed today")
    return (x + y).rename("total")


def doubled(total: pd.Series) -> pd.Series:
    """Twice the total."""
    CALLS.append("doubled")
    return total * 2


def summary(doubled: pd.Series, table: pd.DataFrame) -> dict:
    """Headline numbers."""
    CALLS.append("summary")
    return {"sum": int(doubled.sum()), "rows": len(table)}
