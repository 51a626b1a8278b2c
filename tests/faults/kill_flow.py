"""A four-asset chain for the killed-worker test: `second` is large (about 25 MB of Parquet), so
its write takes long enough for the test to kill the run in the middle of it.

Every value is a function of the version in `$FAULTS_DIR/version`, so the test can tell an old
value from a new one; every function appends its name to `$FAULTS_DIR/calls` when it runs.
"""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 3_000_000


def _folder() -> Path:
    return Path(os.environ["FAULTS_DIR"])


def _ran(name: str) -> int:
    with (_folder() / "calls").open("a") as calls:
        calls.write(name + "\n")
    return int((_folder() / "version").read_text())


def _expected(name: str, version: int):
    """The value `name` has at `version`, computed without recording a call."""
    head = pd.DataFrame({"version": [version] * 10, "row": range(10)})
    if name == "first":
        return head
    big = pd.DataFrame(
        {"version": np.full(ROWS, version), "noise": np.random.default_rng(version).random(ROWS)}
    )
    if name == "second":
        return big
    if name == "third":
        return big.head(1000)
    return {"version": version, "rows": 1000}


def first() -> pd.DataFrame:
    """Small."""
    return _expected("first", _ran("first"))


def second(first: pd.DataFrame) -> pd.DataFrame:
    """Large: 3 million rows of noise seeded with the version."""
    return _expected("second", _ran("second"))


def third(second: pd.DataFrame) -> pd.DataFrame:
    """The first thousand rows; takes 3 s while `$FAULTS_DIR/slow` exists."""
    if (_folder() / "slow").exists():
        time.sleep(3)
    return _expected("third", _ran("third"))


def fourth(third: pd.DataFrame) -> dict:
    """A summary."""
    return _expected("fourth", _ran("fourth"))
