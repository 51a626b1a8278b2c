"""Sales analytics dataflow: raw daily CSVs -> clean orders -> features -> metrics -> report.

Every public function is a Hamilton node. Config ``sales_scope`` picks the source:
``"daily"`` reads one day (needs ``landing_dir`` and ``sales_date``), ``"all"`` reads every
day in ``landing_dir``.
"""

from pathlib import Path

import pandas as pd
from hamilton.function_modifiers import check_output, config, extract_columns, tag

from hamilton_pipelines.sales_files import (
    SALES_COLUMNS,
    read_sales_file,
    sales_file_name,
)

LARGE_ORDER_QUANTITY = 10  # units; bulk orders go to a separate fulfilment team


@config.when(sales_scope="daily")
def raw_sales__daily(landing_dir: str, sales_date: str) -> pd.DataFrame:
    """One day's raw sales, exactly as landed (defects included)."""
    path = Path(landing_dir) / sales_file_name(sales_date)
    return _with_sources(read_sales_file(path), [path])


@config.when(sales_scope="all")
def raw_sales__all(landing_dir: str) -> pd.DataFrame:
    """Every landed day of raw sales, concatenated in date order."""
    paths = sorted(Path(landing_dir).glob("sales_*.csv"))
    if not paths:
        raise FileNotFoundError(
            f"No sales_*.csv files in {landing_dir!r}; land some files there first "
            "(e.g. hamilton_pipelines.sample_data.write_sample_sales)."
        )
    frames = [read_sales_file(path) for path in paths]
    return _with_sources(pd.concat(frames, ignore_index=True), paths)


@extract_columns("quantity", "unit_price")
def clean_sales(raw_sales: pd.DataFrame) -> pd.DataFrame:
    """Usable orders: rows lacking quantity or price dropped, re-sent order_ids removed, typed."""
    cleaned = (
        raw_sales.loc[:, list(SALES_COLUMNS)]
        .dropna(subset=["quantity", "unit_price"])
        .drop_duplicates(subset="order_id", keep="first")
        .astype(
            {
                "order_id": "str",
                "region": "str",
                "product": "str",
                "customer_id": "str",
                "quantity": "int64",
                "unit_price": "float64",
            }
        )
        .assign(order_date=lambda df: pd.to_datetime(df["order_date"], format="%Y-%m-%d"))
        .reset_index(drop=True)
    )
    if cleaned.empty:
        raise ValueError("No usable orders left after cleaning; inspect the landed sales files.")
    return cleaned


@check_output(range=(0.0, 1e9), importance="fail")
def revenue(quantity: pd.Series, unit_price: pd.Series) -> pd.Series:
    """Order revenue (quantity x unit price); negative or absurd values fail the run."""
    return (quantity * unit_price).round(2).rename("revenue")


def is_large_order(quantity: pd.Series) -> pd.Series:
    """Whether an order is a bulk order (at least LARGE_ORDER_QUANTITY units)."""
    return (quantity >= LARGE_ORDER_QUANTITY).rename("is_large_order")


def sales_with_revenue(
    clean_sales: pd.DataFrame, revenue: pd.Series, is_large_order: pd.Series
) -> pd.DataFrame:
    """Clean orders with their revenue and bulk-order flag, one row per order."""
    return clean_sales.assign(revenue=revenue, is_large_order=is_large_order)


def region_summary(sales_with_revenue: pd.DataFrame) -> pd.DataFrame:
    """Orders, units, revenue, average order value and revenue share per region, best first."""
    return _summarise(sales_with_revenue, "region")


def product_summary(sales_with_revenue: pd.DataFrame) -> pd.DataFrame:
    """Orders, units, revenue, average order value and revenue share per product, best first."""
    return _summarise(sales_with_revenue, "product")


def daily_revenue(sales_with_revenue: pd.DataFrame) -> pd.DataFrame:
    """Orders, units and revenue per calendar day, to spot trends and gaps."""
    return (
        sales_with_revenue.groupby("order_date")
        .agg(orders=("order_id", "count"), units=("quantity", "sum"), revenue=("revenue", "sum"))
        .round({"revenue": 2})
        .reset_index()
    )


@check_output(range=(5.0, 500.0), importance="warn")
def average_order_value(revenue: pd.Series) -> float:
    """Mean revenue per order; warns (without failing) when it leaves its usual band."""
    return round(float(revenue.mean()), 2)


@tag(**{"dagster.freshness_hours": "30", "dagster.freshness_warn_hours": "26"})  # daily SLA
def business_metrics(
    sales_with_revenue: pd.DataFrame,
    region_summary: pd.DataFrame,
    product_summary: pd.DataFrame,
    average_order_value: float,
) -> dict[str, float | int | str]:
    """Headline KPIs as plain JSON-serialisable python values (for metadata and dashboards)."""
    return {
        "total_revenue": round(float(sales_with_revenue["revenue"].sum()), 2),
        "orders": len(sales_with_revenue),
        "units": int(sales_with_revenue["quantity"].sum()),
        "customers": int(sales_with_revenue["customer_id"].nunique()),
        "average_order_value": average_order_value,
        "large_order_share": round(float(sales_with_revenue["is_large_order"].mean()), 4),
        "top_region": str(region_summary["region"].iloc[0]),
        "top_product": str(product_summary["product"].iloc[0]),
    }


@tag(**{"dagster.freshness_hours": "30", "dagster.freshness_warn_hours": "26"})  # daily SLA
def sales_report(
    business_metrics: dict[str, float | int | str],
    region_summary: pd.DataFrame,
    product_summary: pd.DataFrame,
    daily_revenue: pd.DataFrame,
) -> str:
    """Markdown report of the headline KPIs plus region, product and daily tables."""
    m = business_metrics
    days = daily_revenue["order_date"].dt.strftime("%Y-%m-%d")
    period = days.iloc[0] if len(days) == 1 else f"{days.iloc[0]} to {days.iloc[-1]}"
    return "\n".join(
        [
            f"# Sales report: {period}",
            "",
            f"- **Revenue:** {m['total_revenue']:,.2f}",
            f"- **Orders:** {m['orders']:,} from {m['customers']:,} customers",
            f"- **Average order value:** {m['average_order_value']:,.2f}",
            f"- **Large orders:** {m['large_order_share']:.1%}",
            f"- **Top region:** {m['top_region']}; **top product:** {m['top_product']}",
            "",
            "## Revenue by region",
            "",
            _markdown_table(_share_as_percent(region_summary)),
            "",
            "## Revenue by product",
            "",
            _markdown_table(_share_as_percent(product_summary)),
            "",
            "## Daily revenue",
            "",
            _markdown_table(daily_revenue.assign(order_date=days)),
            "",
        ]
    )


def _with_sources(frame: pd.DataFrame, paths: list[Path]) -> pd.DataFrame:
    """Records which files were read, so lineage tools can list them as inputs."""
    frame.attrs["source_files"] = [str(path.resolve()) for path in paths]
    return frame


def _summarise(sales: pd.DataFrame, by: str) -> pd.DataFrame:
    summary = (
        sales.groupby(by)
        .agg(orders=("order_id", "count"), units=("quantity", "sum"), revenue=("revenue", "sum"))
        .round({"revenue": 2})
        .reset_index()
    )
    return summary.assign(
        avg_order_value=(summary["revenue"] / summary["orders"]).round(2),
        revenue_share=(summary["revenue"] / summary["revenue"].sum()).round(4),
    ).sort_values(["revenue", by], ascending=[False, True], ignore_index=True)


def _share_as_percent(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.assign(revenue_share=summary["revenue_share"].map("{:.1%}".format))


def _markdown_table(frame: pd.DataFrame) -> str:
    """GitHub-flavoured markdown table; floats get thousands separators and 2 decimals."""
    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if pd.api.types.is_float(value):
        return f"{value:,.2f}"
    if pd.api.types.is_integer(value):
        return f"{value:,}"
    return str(value)
