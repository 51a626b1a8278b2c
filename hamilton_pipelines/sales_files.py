"""The landed daily sales files: their names, their schema, and reading them safely.

Plain functions, shared by the sales dataflow (which reads the files) and the landing sensor
(which decides which files are worth a run). Every problem names the file and what to do.
"""

import datetime as dt
import re
from pathlib import Path

import pandas as pd

SALES_COLUMNS = (
    "order_id",
    "order_date",
    "region",
    "product",
    "quantity",
    "unit_price",
    "customer_id",
)
NUMERIC_COLUMNS = ("quantity", "unit_price")
FILE_NAME = re.compile(r"^sales_(\d{4}-\d{2}-\d{2})\.csv$")


class SalesFileError(ValueError):
    """A landed sales file cannot be used; the message names the file and the fix."""


def sales_file_name(date: str) -> str:
    """File name of one day's landing file, e.g. ``sales_2026-01-01.csv``."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"Expected a YYYY-MM-DD date, got {date!r}.") from None
    return f"sales_{day.isoformat()}.csv"


def sales_date_of(file_name: str) -> str | None:
    """The date a landing file is for (``sales_2026-01-01.csv`` -> ``2026-01-01``), else None."""
    match = FILE_NAME.fullmatch(file_name)  # `$` would also accept a trailing newline
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1)).isoformat()
    except ValueError:
        return None


def read_sales_file(path: Path) -> pd.DataFrame:
    """Reads one landed file, refusing anything a run should not transform."""
    if not path.is_file():
        raise SalesFileError(
            f"Sales file {path} does not exist; check landing_dir and sales_date, or land the file "
            "first (e.g. hamilton_pipelines.sample_data.write_sample_sales)."
        )
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SalesFileError(
            f"Sales file {path} is not UTF-8 ({error.reason}); re-export it as UTF-8."
        ) from None
    except pd.errors.EmptyDataError:
        raise SalesFileError(f"Sales file {path} is empty; re-export it with a header and rows.") from None
    except (pd.errors.ParserError, OSError) as error:
        raise SalesFileError(
            f"Sales file {path} cannot be read as CSV: {error}; re-export it as valid CSV "
            "(quote fields that contain commas or newlines)."
        ) from None
    missing = [column for column in SALES_COLUMNS if column not in frame.columns]
    if missing:
        raise SalesFileError(
            f"Sales file {path} lacks required columns {missing}; "
            f"re-export it with columns {list(SALES_COLUMNS)}."
        )
    if frame.empty:
        raise SalesFileError(f"Sales file {path} has a header but no rows; re-export that day's sales.")
    for column in NUMERIC_COLUMNS:
        values = frame[column].dropna()
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        if len(bad):
            raise SalesFileError(
                f"Sales file {path}: column {column!r} must be numeric, but row {bad.index[0] + 2} "
                f"holds {bad.iloc[0]!r}; fix the export."
            )
    return frame


def sales_file_problem(path: Path) -> str | None:
    """Why a landed file is unusable, or None; reads only the header and the numeric columns."""
    try:
        read_sales_file(path)
    except SalesFileError as error:
        return str(error)
    return None
