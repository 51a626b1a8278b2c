import csv

import pytest

from hamilton_pipelines.sales_files import SALES_COLUMNS, sales_file_name
from hamilton_pipelines.sample_data import write_sample_sales


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_sales_file_name():
    assert sales_file_name("2026-01-05") == "sales_2026-01-05.csv"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        sales_file_name("05/01/2026")


def test_writes_one_file_per_day(tmp_path):
    landing = tmp_path / "landing" / "sales"  # created on demand
    paths = write_sample_sales(landing, days=3, rows_per_day=200, start="2026-02-27")

    assert [p.name for p in paths] == [
        "sales_2026-02-27.csv",
        "sales_2026-02-28.csv",
        "sales_2026-03-01.csv",
    ]
    assert sorted(landing.iterdir()) == paths  # no temp files left behind
    rows = _rows(paths[2])
    assert len(rows) == 200
    assert tuple(rows[0]) == SALES_COLUMNS
    assert {r["order_date"] for r in rows} == {"2026-03-01"}
    assert {r["region"] for r in rows} == {"North", "South", "East", "West"}
    assert 5 <= len({r["product"] for r in rows}) <= 8


def test_files_contain_the_defects_cleaning_must_handle(tmp_path):
    [path] = write_sample_sales(tmp_path, days=1, rows_per_day=300)
    rows = _rows(path)

    assert sum(r["quantity"] == "" for r in rows) == 3
    assert sum(r["unit_price"] == "" for r in rows) == 3
    assert len(rows) - len({r["order_id"] for r in rows}) == 3
    complete = [r for r in rows if r["quantity"] and r["unit_price"]]
    assert all(int(r["quantity"]) >= 1 and float(r["unit_price"]) > 0 for r in complete)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = write_sample_sales(tmp_path / "a", days=2, rows_per_day=50)
    again = write_sample_sales(tmp_path / "b", days=2, rows_per_day=50)
    other = write_sample_sales(tmp_path / "c", days=2, rows_per_day=50, seed=8)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[0].read_bytes() != other[0].read_bytes()
    assert first[0].read_bytes() != first[1].read_bytes()


def test_rejects_too_few_rows(tmp_path):
    with pytest.raises(ValueError, match="rows_per_day"):
        write_sample_sales(tmp_path, rows_per_day=5)
