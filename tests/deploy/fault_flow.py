"""A dataflow slow enough to be interrupted: a chain of steps, each sleeping `FAULT_STEP_S`
seconds (default 2) and producing a frame whose every value says which step wrote it."""

import os
import time

import pandas as pd

ROWS = 2_000


def _step(previous: pd.DataFrame | None, number: int) -> pd.DataFrame:
    time.sleep(float(os.environ.get("FAULT_STEP_S", "2")))
    return pd.DataFrame({"step": [number] * ROWS, "row": range(ROWS)})


def step_1() -> pd.DataFrame:
    return _step(None, 1)


def step_2(step_1: pd.DataFrame) -> pd.DataFrame:
    return _step(step_1, 2)


def step_3(step_2: pd.DataFrame) -> pd.DataFrame:
    return _step(step_2, 3)


def step_4(step_3: pd.DataFrame) -> pd.DataFrame:
    return _step(step_3, 4)


def step_5(step_4: pd.DataFrame) -> pd.DataFrame:
    return _step(step_4, 5)


def step_6(step_5: pd.DataFrame) -> pd.DataFrame:
    return _step(step_5, 6)
