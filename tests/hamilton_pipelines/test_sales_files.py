"""Landed sales files: names, and one clear error per kind of bad file."""

import pytest

from hamilton_pipelines.sales_files import (
    SalesFileError,
    read_sales_file,
    sales_date_of,
    sales_file_problem,
)
from hamilton_pipelines.sample_data import write_sample_sales

HEADER = "order_id,order_date,region,product,quantity,unit_price,customer_id\n"


@pytest.mark.parametrize(
    "name, date",
    [
        ("sales_2026-01-31.csv", "2026-01-31"),
        ("sales_2026-02-30.csv", None),  # no such day
        ("sales_2026-01-31.csv.tmp", None),
        ("Sales_2026-01-31.csv", None),
        ("sales_2026-1-31.csv", None),
        ("orders.csv", None),
    ],
)
def test_file_names_map_to_dates(name, date):
    assert sales_date_of(name) == date


def test_a_good_file_reads(tmp_path):
    [path] = write_sample_sales(tmp_path, days=1, rows_per_day=20)
    assert len(read_sales_file(path)) == 20
    assert sales_file_problem(path) is None


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "is empty"),
        (HEADER.encode(), "has a header but no rows"),
        (b"order_id,region\n1,North\n", "lacks required columns"),
        (
            (HEADER + "1,2026-01-01,North,Beans,three,4.5,c1\n").encode(),
            "'quantity' must be numeric, but row 2 holds 'three'",
        ),
        ((HEADER + "1,2026-01-01,M\xfcnchen,Beans,3,4.5,c1\n").encode("latin-1"), "is not UTF-8"),
        ((HEADER + '1,"2026-01-01,North\n').encode(), "cannot be read as CSV"),
    ],
)
def test_each_bad_file_gets_one_clear_error_naming_it(tmp_path, content, problem):
    path = tmp_path / "sales_2026-01-01.csv"
    path.write_bytes(content)
    with pytest.raises(SalesFileError) as error:
        read_sales_file(path)
    assert str(path) in str(error.value) and problem in str(error.value)
    assert sales_file_problem(path) == str(error.value)
