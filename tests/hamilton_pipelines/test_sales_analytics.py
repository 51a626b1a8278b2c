import csv
import json
import logging

import numpy as np
import pandas as pd
import pytest
from hamilton import driver
from hamilton.data_quality.base import DataValidationError

from hamilton_pipelines import sales_analytics as sa
from hamilton_pipelines.sales_files import SalesFileError
from hamilton_pipelines.sample_data import write_sample_sales


@pytest.fixture
def raw():
    """Six landed rows: one missing quantity, one missing price, one re-sent order."""
    return pd.DataFrame(
        {
            "order_id": ["A1", "A2", "A3", "A4", "A2", "A5"],
            "order_date": ["2026-01-01"] * 2 + ["2026-01-02"] * 2 + ["2026-01-01", "2026-01-02"],
            "region": ["North", "South", "North", "West", "South", "East"],
            "product": ["Kettle", "Beans", "Beans", "Kettle", "Beans", "Beans"],
            "quantity": [2.0, 12.0, np.nan, 1.0, 12.0, 3.0],
            "unit_price": [50.0, 10.0, 9.5, np.nan, 10.0, 10.0],
            "customer_id": ["C1", "C2", "C1", "C3", "C2", "C1"],
        }
    )


@pytest.fixture
def sales(raw):
    clean = sa.clean_sales(raw)
    revenue = sa.revenue(clean["quantity"], clean["unit_price"])
    return sa.sales_with_revenue(clean, revenue, sa.is_large_order(clean["quantity"]))


def _build(scope):
    return driver.Builder().with_modules(sa).with_config({"sales_scope": scope}).build()


def test_clean_sales_drops_incomplete_and_duplicate_orders(raw):
    clean = sa.clean_sales(raw)

    assert clean["order_id"].tolist() == ["A1", "A2", "A5"]
    assert clean["quantity"].tolist() == [2, 12, 3]
    assert clean.index.tolist() == [0, 1, 2]
    assert clean["order_date"].dtype.kind == "M"
    assert clean["quantity"].dtype == "int64"
    assert clean["unit_price"].dtype == "float64"
    assert pd.api.types.is_string_dtype(clean["region"])
    assert pd.api.types.is_string_dtype(clean["product"])


def test_clean_sales_refuses_to_return_nothing(raw):
    with pytest.raises(ValueError, match="No usable orders"):
        sa.clean_sales(raw.assign(quantity=np.nan))


def test_revenue_and_large_order_flag():
    quantity = pd.Series([2, 12, 3])
    unit_price = pd.Series([50.0, 10.0, 0.333])

    assert sa.revenue(quantity, unit_price).tolist() == [100.0, 120.0, 1.0]
    assert sa.is_large_order(quantity).tolist() == [False, True, False]


def test_region_and_product_summaries(sales):
    regions = sa.region_summary(sales)
    assert regions["region"].tolist() == ["South", "North", "East"]  # by revenue
    assert regions["revenue"].tolist() == [120.0, 100.0, 30.0]
    assert regions["avg_order_value"].tolist() == [120.0, 100.0, 30.0]
    assert regions["revenue_share"].tolist() == [0.48, 0.4, 0.12]

    products = sa.product_summary(sales)
    assert products.to_dict("list") == {
        "product": ["Beans", "Kettle"],
        "orders": [2, 1],
        "units": [15, 2],
        "revenue": [150.0, 100.0],
        "avg_order_value": [75.0, 100.0],
        "revenue_share": [0.6, 0.4],
    }


def test_daily_revenue(sales):
    daily = sa.daily_revenue(sales)
    assert daily["order_date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-01-01", "2026-01-02"]
    assert daily["orders"].tolist() == [2, 1]
    assert daily["revenue"].tolist() == [220.0, 30.0]


def test_business_metrics_are_hand_checked_and_json_ready(sales):
    aov = sa.average_order_value(sales["revenue"])
    metrics = sa.business_metrics(sales, sa.region_summary(sales), sa.product_summary(sales), aov)

    assert metrics == {
        "total_revenue": 250.0,
        "orders": 3,
        "units": 17,
        "customers": 2,
        "average_order_value": 83.33,
        "large_order_share": 0.3333,
        "top_region": "South",
        "top_product": "Beans",
    }
    assert {type(v) for v in metrics.values()} <= {float, int, str}
    assert json.loads(json.dumps(metrics)) == metrics


def test_sales_report_renders_markdown_tables(sales):
    regions, products = sa.region_summary(sales), sa.product_summary(sales)
    metrics = sa.business_metrics(sales, regions, products, 83.33)
    report = sa.sales_report(metrics, regions, products, sa.daily_revenue(sales))

    assert report.startswith("# Sales report: 2026-01-01 to 2026-01-02\n")
    assert "- **Revenue:** 250.00" in report
    assert "| region | orders | units | revenue | avg_order_value | revenue_share |" in report
    assert "| South | 1 | 12 | 120.00 | 120.00 | 48.0% |" in report
    assert "| 2026-01-01 | 2 | 14 | 220.00 |" in report


def test_missing_file_and_missing_columns_explain_the_fix(tmp_path, raw):
    with pytest.raises(SalesFileError, match=r"sales_2026-01-01\.csv does not exist.*sales_date"):
        sa.raw_sales__daily(str(tmp_path), "2026-01-01")
    with pytest.raises(FileNotFoundError, match="No sales_"):
        sa.raw_sales__all(str(tmp_path))

    raw.drop(columns=["unit_price"]).to_csv(tmp_path / "sales_2026-01-01.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks required columns \['unit_price'\]"):
        sa.raw_sales__daily(str(tmp_path), "2026-01-01")


def test_raw_sales_all_concatenates_days_in_order(tmp_path):
    write_sample_sales(tmp_path, days=3, rows_per_day=20, start="2026-03-30")
    (tmp_path / "notes.csv").write_text("ignored\n")

    raw = sa.raw_sales__all(str(tmp_path))
    assert len(raw) == 60
    days = raw["order_date"].drop_duplicates().tolist()
    assert days == ["2026-03-30", "2026-03-31", "2026-04-01"]


def test_revenue_check_fails_the_run_on_negative_revenue():
    dr = _build("daily")
    bad = {"quantity": pd.Series([2, -1]), "unit_price": pd.Series([5.0, 5.0])}

    with pytest.raises(DataValidationError, match=r"\[revenue:range_validator\].*1 outside"):
        dr.execute(["revenue"], overrides=bad)
    assert dr.execute(["revenue"], overrides={**bad, "quantity": pd.Series([2, 1])})["revenue"].tolist() == [
        10.0,
        5.0,
    ]


def test_average_order_value_check_only_warns(caplog):
    dr = _build("daily")
    with caplog.at_level(logging.WARNING):
        huge = pd.Series([900.0, 1100.0])
        result = dr.execute(["average_order_value"], overrides={"revenue": huge})

    assert result["average_order_value"] == 1000.0
    assert "[average_order_value:range_validator] validator failed" in caplog.text


def _expected_orders(path):
    """Complete, first-seen orders in a landed file, counted with the csv module alone."""
    seen = set()
    for row in csv.DictReader(path.open(newline="")):
        if row["quantity"] and row["unit_price"]:
            seen.add(row["order_id"])
    return len(seen)


def test_daily_dataflow_end_to_end(tmp_path):
    paths = write_sample_sales(tmp_path, days=2, rows_per_day=200)
    out = _build("daily").execute(
        ["business_metrics", "region_summary", "sales_report", "revenue_range_validator"],
        inputs={"landing_dir": str(tmp_path), "sales_date": "2026-01-02"},
    )

    metrics = out["business_metrics"]
    assert metrics["orders"] == _expected_orders(paths[1]) == 194
    assert metrics["total_revenue"] == pytest.approx(out["region_summary"]["revenue"].sum())
    assert metrics["top_region"] == out["region_summary"]["region"].iloc[0]
    assert out["revenue_range_validator"].passes
    assert out["sales_report"].startswith("# Sales report: 2026-01-02\n")


def test_all_scope_needs_no_sales_date(tmp_path):
    paths = write_sample_sales(tmp_path, days=3, rows_per_day=100)
    dr = _build("all")
    assert "sales_date" not in {v.name for v in dr.list_available_variables()}

    out = dr.execute(["business_metrics", "daily_revenue"], inputs={"landing_dir": str(tmp_path)})
    assert out["business_metrics"]["orders"] == sum(map(_expected_orders, paths)) == 3 * 97
    assert out["daily_revenue"]["orders"].tolist() == [97, 97, 97]
