"""A partitioned two-asset dataflow for the concurrency tests: each value is a function of the
partition and of the run config's `version` (about 2.5 MB of Parquet), computed slowly enough
(`$FAULTS_SLOW_S`, default 1 s) that concurrent runs overlap."""

import os
import time
import zlib

import numpy as np
import pandas as pd

ROWS = 300_000


def _expected(partition: str, version: int) -> pd.DataFrame:
    seed = zlib.crc32(partition.encode()) + version
    return pd.DataFrame(
        {"version": np.full(ROWS, version), "noise": np.random.default_rng(seed).random(ROWS)}
    )


def value(partition: str, version: int = 1) -> pd.DataFrame:
    """The partition's noise at `version`."""
    time.sleep(float(os.environ.get("FAULTS_SLOW_S", "1")))
    return _expected(partition, version)


def summary(value: pd.DataFrame, partition: str) -> dict:
    """Which partition and version the value is, and its sum; waits for the file `$FAULTS_GATE`
    first when that is set."""
    gate = os.environ.get("FAULTS_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    return {
        "partition": partition,
        "version": int(value["version"].iloc[0]),
        "sum": float(value["noise"].sum()),
    }
