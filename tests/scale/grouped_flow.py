"""Three asset groups: two independent slow ones and one that joins them (for split-step tests)."""

import time

import pandas as pd
from hamilton.function_modifiers import check_output, tag

SLOW_S = 1.0  # long enough that two steps visibly overlap, short enough for a quick test


@tag(**{"dagster.group": "left"})
def left_numbers(size: int = 4) -> pd.Series:
    """0, 1, 2, ... in the left group."""
    return pd.Series(range(size), name="left")


@tag(**{"dagster.group": "left"})
def left_total(left_numbers: pd.Series) -> float:
    """A slow sum."""
    time.sleep(SLOW_S)
    return float(left_numbers.sum())


@tag(**{"dagster.group": "right"})
def right_numbers(size: int = 4) -> pd.Series:
    """Squares in the right group."""
    return pd.Series([i * i for i in range(size)], name="right")


@tag(**{"dagster.group": "right"})
@check_output(range=(0.0, 1000.0), importance="fail")
def right_total(right_numbers: pd.Series) -> float:
    """A slow sum, checked."""
    time.sleep(SLOW_S)
    return float(right_numbers.sum())


@tag(**{"dagster.group": "combined"})
def both(left_numbers: pd.Series, right_numbers: pd.Series) -> pd.DataFrame:
    """The two series side by side."""
    return pd.DataFrame({"left": left_numbers, "right": right_numbers})


@tag(**{"dagster.group": "combined"})
def report(both: pd.DataFrame, left_total: float, right_total: float) -> dict:
    """Numbers from every group."""
    return {"rows": len(both), "left": left_total, "right": right_total}
