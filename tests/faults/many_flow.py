"""A small two-asset dataflow for the many-runs test."""

import pandas as pd


def numbers(rows: int = 10) -> pd.DataFrame:
    """`rows` numbers."""
    return pd.DataFrame({"n": range(rows)})


def total(numbers: pd.DataFrame) -> dict:
    """Their count and sum."""
    return {"rows": len(numbers), "sum": int(numbers["n"].sum())}
