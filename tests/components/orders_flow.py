"""A small dataflow for the component tests: an input per region and day, tags, columns, a check."""

import pandas as pd
from hamilton.function_modifiers import check_output, extract_columns, tag


@extract_columns("amount")
def orders(region: str, day: str = "2026-01-01") -> pd.DataFrame:
    """Orders of one region and day."""
    return pd.DataFrame({"region": [region] * 3, "day": [day] * 3, "amount": [1.0, 2.0, 3.0]})


@check_output(range=(0, 1000), importance="warn")
def total(amount: pd.Series) -> float:
    """Sum of the amounts."""
    return float(amount.sum())


@tag(team="sales", **{"dagster.group": "reporting"})
def report(total: float, region: str) -> str:
    """One line for people."""
    return f"{region}: {total:.2f}"
