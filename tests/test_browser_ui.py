"""The Dagster UI in a real headless browser: after materializing the shipped dataflows under
`dagster dev`, Chromium opens the asset graph, an asset's page and the run's log, and checks what
a person would see there. Each step saves a screenshot to $TEST_ARTIFACTS_DIR (default
tests/artifacts/, git-ignored), under browser_ui/.

What Dagster's open-source UI (1.13) shows, and where:
- the asset graph of a group: /locations/<location>/asset-groups/<group>;
- an asset's page: /assets/<key>: description, the column schema (Columns), and the code version
  under "Compute details" (collapsed, middle-truncated, the full hash in the title attribute);
- a run's page: /runs/<id>: the log, with the step's `Computing N asset(s) …` line, and every
  materialization's metadata, including its `[k/N pct%] ... done in ... — ETA ...` progress.
  Column lineage (`dagster/column_lineage`) is shown only there, as "[Show JSON]": the asset page
  leaves it out (the column lineage graph is a Dagster+ feature).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from hamilton_pipelines import ml_pipeline, sales_analytics
from tests.support.dagster_dev import (
    LOCATION,
    dagster_dev_fixture,  # noqa: F401  (the `dagster_dev` fixture)
)

pytestmark = pytest.mark.services  # `dagster dev` and Chromium

# Debian's chromium (scripts/install-system); CHROMIUM_PATH points elsewhere.
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1920, "height": 1200}  # wide enough for full asset nodes, not minimal ones
TIMEOUT_MS = 30_000
SALES_DAY = "2026-01-05"
TABLE_ASSET = "sales_with_revenue"  # a DataFrame asset with a column schema and column lineage
PROGRESS = re.compile(r"^\[(\d+)/(\d+) (\d+)%\] (\S+) done in \d+\.\d\d s \(rows=(\d+|-)\)( — ETA .+)?$")
expect.set_options(timeout=TIMEOUT_MS)  # the UI loads lazily; every expectation waits this long


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(__file__).parent / "artifacts") / "browser_ui"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # no stale screenshot (or failure) from an earlier run
        old.unlink()
    return folder


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found ({CHROMIUM}): the browser tests drive Debian's chromium; "
            "install it with scripts/install-system.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def materialized(dagster_dev) -> dict:
    """Materializes the ML dataflow (one run, launched like the UI's Materialize button) and one
    day of the sales dataflow (a landed file, run by the landing sensor); both must succeed."""
    from hamilton_pipelines.sample_data import write_sample_sales

    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups: dict[str, list[str]] = {}
    for node in nodes:
        groups.setdefault(node["groupName"], []).append("/".join(node["assetKey"]["path"]))
    sales_group, ml_group = (module.__name__.rsplit(".", 1)[-1] for module in (sales_analytics, ml_pipeline))
    assert {sales_group, ml_group} <= set(groups), groups

    [landed] = write_sample_sales(dagster_dev.landing, days=1, rows_per_day=50, start=SALES_DAY)
    ml_run = dagster_dev.launch_run([key.split("/") for key in groups[ml_group]])
    assert dagster_dev.wait_for_run(ml_run) == "SUCCESS", dagster_dev.run_messages(ml_run)
    sales_run = _wait_for_sensor_run(dagster_dev, landed.name)
    assert dagster_dev.wait_for_run(sales_run) == "SUCCESS", dagster_dev.run_messages(sales_run)

    dagster_dev.graphql("mutation { setNuxSeen }")  # no "Join the Dagster community" dialog
    return {
        "groups": groups,
        "sales_group": sales_group,
        "ml_group": ml_group,
        "ml_run": ml_run,
        "sales_run": sales_run,
    }


def _wait_for_sensor_run(dagster_dev, file_name: str, timeout_s: float = 240) -> str:
    deadline = time.monotonic() + timeout_s
    while not (runs := dagster_dev.runs_with_tag("landing/file", file_name)):
        assert time.monotonic() < deadline, f"the landing sensor launched no run for {file_name}"
        time.sleep(1)
    return runs[0]["runId"]


@pytest.fixture
def page(browser, dagster_dev):
    context = browser.new_context(viewport=VIEWPORT, base_url=dagster_dev.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@contextlib.contextmanager
def screenshot(page, artifacts: Path, name: str):
    """Saves a full-page screenshot when the block ends; `<name>.FAILED.png` if it failed."""
    try:
        yield
    except BaseException:
        path = artifacts / f"{name}.FAILED.png"
        with contextlib.suppress(Exception):  # never hide the failure itself
            page.screenshot(path=path, full_page=True)
            print(f"screenshot of the failure: {path}")
        raise
    path = artifacts / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")


def _asset_node_name(page, name: str):
    return page.get_by_text(name, exact=True).filter(visible=True)


def test_the_asset_graph_shows_every_asset_of_each_dataflow(page, materialized, artifacts):
    groups = [
        (materialized["sales_group"], materialized["sales_run"]),
        (materialized["ml_group"], materialized["ml_run"]),
    ]
    for number, (group, run_id) in enumerate(groups, start=1):
        assets = materialized["groups"][group]
        with screenshot(page, artifacts, f"0{number}_asset_graph_{group}"):
            page.goto(f"/locations/{LOCATION}/asset-groups/{group}")
            expect(page.get_by_role("tab", name="Lineage")).to_be_visible()
            for key in assets:
                expect(_asset_node_name(page, key)).to_have_count(1)
            # Every node's "Latest event" ("… ago") links to the run that materialized it.
            latest = page.locator(f'a[href^="/runs/{run_id}"]').filter(has_text=re.compile(r" ago$"))
            expect(latest).to_have_count(len(assets))
            expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
            if group == materialized["ml_group"]:  # unpartitioned: each node says "Materialized"
                expect(page.get_by_text("Materialized", exact=True)).to_have_count(len(assets))


def test_an_asset_page_shows_description_code_version_and_column_schema(
    page, materialized, artifacts, dagster_dev
):
    node = dagster_dev.graphql(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
             description opVersion assetMaterializations(limit: 1) { metadataEntries { label
               ... on TableSchemaMetadataEntry { schema { columns { name type } } } } } } } }""",
        {"key": {"path": [TABLE_ASSET]}},
    )["assetNodeOrError"]
    description = inspect.cleandoc(getattr(sales_analytics, TABLE_ASSET).__doc__)
    assert node["description"] == description
    [schema] = [
        e["schema"]
        for e in node["assetMaterializations"][0]["metadataEntries"]
        if e["label"] == "dagster/column_schema"
    ]
    columns = [c["name"] for c in schema["columns"]]
    assert {"revenue", "is_large_order"} <= set(columns)

    with screenshot(page, artifacts, f"03_asset_page_{TABLE_ASSET}"):
        page.goto(f"/assets/{TABLE_ASSET}")
        expect(page.get_by_role("tab", name="Overview")).to_be_visible()
        expect(page.get_by_text(description, exact=True)).to_be_visible()

        table = page.get_by_role("table").filter(has=page.get_by_text("Column name", exact=True))
        expect(table).to_have_count(1)
        for column in schema["columns"]:
            row = table.get_by_role("row").filter(has=page.get_by_text(column["name"], exact=True))
            expect(row).to_have_count(1)
            expect(row).to_contain_text(column["type"])

        page.get_by_text("Compute details", exact=True).click()  # collapsed by default
        expect(page.get_by_text("Code version", exact=True)).to_be_visible()
        expect(page.get_by_title(node["opVersion"], exact=True)).to_be_visible()  # the full hash
        page.get_by_title(node["opVersion"], exact=True).scroll_into_view_if_needed()
        # No column lineage here: the open-source UI leaves `dagster/column_lineage` off the asset
        # page (its column graph is a Dagster+ feature); the run-log test below checks it instead.


def test_the_run_log_shows_progress_and_column_lineage(page, materialized, artifacts, dagster_dev):
    run_id = materialized["sales_run"]
    expected = dagster_dev.materialization_progress(run_id)
    sales_assets = set(materialized["groups"][materialized["sales_group"]])
    total = len(sales_assets)
    assert all(PROGRESS.match(m) for m in expected), expected
    assert [PROGRESS.match(m).group(1, 2) for m in expected] == [
        (str(k), str(total)) for k in range(1, total + 1)
    ]
    assert {PROGRESS.match(m).group(4) for m in expected} == sales_assets
    [table_progress] = [m for m in expected if PROGRESS.match(m).group(4) == TABLE_ASSET]

    with screenshot(page, artifacts, "04_run_log_progress"):
        page.goto(f"/runs/{run_id}")
        expect(page.get_by_text(f"partition: {SALES_DAY}", exact=True)).to_be_visible()
        page.get_by_placeholder("Filter…").fill("Computing")  # the step's first line
        expect(
            page.get_by_text(re.compile(rf"^Computing {total} asset\(s\) of sales_analytics; "))
        ).to_be_visible()
        page.get_by_placeholder("Filter…").fill(TABLE_ASSET)
        page.get_by_role("button", name="View full message").first.click()
        message = page.get_by_role("dialog")
        expect(message.get_by_role("row").filter(has_text="progress")).to_contain_text(table_progress)

    lineage = _column_lineage(dagster_dev, run_id, TABLE_ASSET)
    with screenshot(page, artifacts, f"05_run_log_column_lineage_{TABLE_ASSET}"):
        message = page.get_by_role("dialog")  # the same message, still open
        expect(message).to_contain_text(f"/{TABLE_ASSET}/")  # the event of this asset
        message.get_by_role("row").filter(has_text="dagster/column_lineage").get_by_text(
            "[Show JSON]"
        ).click()
        shown = page.get_by_role("dialog").filter(has_text="columnDeps")
        expect(shown).to_be_visible()
        text = shown.inner_text()
        shown_lineage = json.loads(text[text.index("[") : text.rindex("]") + 1])
        assert _simplified(shown_lineage) == lineage
        assert lineage["revenue"] == [("revenue", "revenue")]  # a Hamilton column node


def _column_lineage(dagster_dev, run_id: str, asset: str) -> dict[str, list[tuple[str, str]]]:
    """The `dagster/column_lineage` of the asset's materialization in this run, over GraphQL."""
    node = dagster_dev.graphql(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
             assetMaterializations(limit: 1) { runId metadataEntries { label
               ... on TableColumnLineageMetadataEntry { lineage { columnName
                 columnDeps { assetKey { path } columnName } } } } } } } }""",
        {"key": {"path": [asset]}},
    )["assetNodeOrError"]
    [materialization] = node["assetMaterializations"]
    assert materialization["runId"] == run_id
    [lineage] = [
        e["lineage"] for e in materialization["metadataEntries"] if e["label"] == "dagster/column_lineage"
    ]
    return _simplified(lineage)


def _simplified(lineage: list[dict]) -> dict[str, list[tuple[str, str]]]:
    return {
        entry["columnName"]: [("/".join(d["assetKey"]["path"]), d["columnName"]) for d in entry["columnDeps"]]
        for entry in lineage
    }
