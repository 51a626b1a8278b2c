"""Deterministic, offline generator of raw daily sales CSVs (with realistic defects).

Plain helper functions, not a Hamilton dataflow.
"""

import datetime as dt
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from hamilton_pipelines.sales_files import sales_file_name

_REGIONS = ("North", "South", "East", "West")
_REGION_WEIGHTS = (0.30, 0.20, 0.22, 0.28)
_LIST_PRICES = {
    "Espresso Machine": 249.00,
    "Coffee Grinder": 89.00,
    "Milk Frother": 39.50,
    "French Press": 29.90,
    "Pour-Over Kettle": 54.00,
    "Coffee Beans 1kg": 18.75,
    "Paper Filters (100)": 4.99,
}
_PRODUCT_WEIGHTS = (0.06, 0.10, 0.12, 0.14, 0.08, 0.32, 0.18)


def write_sample_sales(
    landing_dir: str | Path,
    days: int = 7,
    rows_per_day: int = 500,
    start: str = "2026-01-01",
    seed: int = 7,
) -> list[Path]:
    """Write ``days`` daily sales CSVs into ``landing_dir`` and return their paths.

    Each file holds exactly ``rows_per_day`` rows. About 1% of rows miss a quantity, 1% miss a
    unit price and 1% repeat an earlier order_id, so downstream cleaning has work to do. The same
    arguments always produce byte-identical files.
    """
    if days < 1 or rows_per_day < 10:
        raise ValueError("write_sample_sales needs days >= 1 and rows_per_day >= 10.")
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    first_day = dt.date.fromisoformat(start)
    paths = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        rng = np.random.default_rng([seed, offset])  # one stream per day: files are independent
        path = landing / sales_file_name(day.isoformat())
        _write_atomically(_daily_orders(rng, day, rows_per_day), path)
        paths.append(path)
    return paths


def _daily_orders(rng: np.random.Generator, day: dt.date, rows: int) -> pd.DataFrame:
    """One day of orders, including the duplicate and missing-value defects."""
    n_defects = max(1, rows // 100)
    n_orders = rows - n_defects  # the duplicates fill the file up to `rows`
    products = rng.choice(list(_LIST_PRICES), size=n_orders, p=_PRODUCT_WEIGHTS)
    list_price = np.array([_LIST_PRICES[p] for p in products])
    discount = rng.choice([0.0, 0.05, 0.10, 0.15], size=n_orders, p=[0.7, 0.15, 0.1, 0.05])
    bulk = rng.random(n_orders) < 0.03
    quantity = np.where(bulk, rng.integers(10, 60, n_orders), rng.integers(1, 5, n_orders))
    orders = pd.DataFrame(
        {
            "order_id": [f"SO-{day:%Y%m%d}-{i:05d}" for i in range(1, n_orders + 1)],
            "order_date": day.isoformat(),
            "region": rng.choice(_REGIONS, size=n_orders, p=_REGION_WEIGHTS),
            "product": products,
            "quantity": pd.array(quantity, dtype="Int64"),
            "unit_price": np.round(list_price * (1 - discount), 2),
            "customer_id": [f"C{c:05d}" for c in rng.integers(1, 5000, n_orders)],
        }
    )
    # Disjoint rows for each defect, so every defect costs exactly one clean order.
    picks = rng.permutation(n_orders)
    duplicated, no_quantity, no_price = np.split(picks[: 3 * n_defects], 3)
    orders.loc[no_quantity, "quantity"] = pd.NA
    orders.loc[no_price, "unit_price"] = np.nan
    with_dupes = pd.concat([orders, orders.iloc[duplicated]], ignore_index=True)
    return with_dupes.iloc[rng.permutation(rows)]  # re-sends arrive out of order


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file next to ``path`` and rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.2f", lineterminator="\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; landing files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """`python -m hamilton_pipelines.sample_data LANDING_DIR [--days 7] [--start 2026-01-01]`."""
    import argparse

    parser = argparse.ArgumentParser(description="Write generated daily sales CSVs into a folder.")
    parser.add_argument("landing_dir")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", default="2026-01-01")
    args = parser.parse_args(argv)
    paths = write_sample_sales(args.landing_dir, days=args.days, start=args.start)
    print(f"wrote {len(paths)} sample sales file(s) to {Path(args.landing_dir).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
