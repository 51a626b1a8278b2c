"""A daily dataflow: the partition's day, as a landed export's rows, and their total. Reading the
export takes `FAULT_DAY_S` seconds (default 0), so a queue of its runs measures the queue and the
run limit, not the work."""

import os
import time

import pandas as pd


def day_rows(day: str) -> pd.DataFrame:
    time.sleep(float(os.environ.get("FAULT_DAY_S", "0")))
    return pd.DataFrame({"day": [day] * 100, "amount": range(100)})


def day_total(day_rows: pd.DataFrame) -> int:
    return int(day_rows["amount"].sum())
