"""docs/dataflow.md's pictures are current: the DOT source Hamilton draws for each shipped dataflow
is the committed one, and the page shows every picture and names every asset."""

import importlib.util
import re
from pathlib import Path

import pytest

from orchestration.dataflow import Dataflow

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "dataflow.md"


def _pictures():
    spec = importlib.util.spec_from_file_location(
        "dataflow_pictures", ROOT / "scripts" / "dataflow_pictures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PICTURES = _pictures()
DATAFLOWS = PICTURES.dataflows()


@pytest.mark.parametrize("name", sorted(DATAFLOWS))
def test_the_committed_picture_is_what_hamilton_draws_now(name):
    module, config = DATAFLOWS[name]
    committed = (PICTURES.PICTURES / f"{name}.dot").read_text()
    assert PICTURES.dot_source(module, config) == committed, (
        f"docs/dataflow/{name}.dot is stale: run scripts/dataflow-pictures and commit the result"
    )
    svg = (PICTURES.PICTURES / f"{name}.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert f"(dataflow/{name}.svg)" in PAGE.read_text()


@pytest.mark.parametrize("name", sorted(DATAFLOWS))
def test_the_page_names_every_asset(name):
    module, config = DATAFLOWS[name]
    assets = Dataflow([module], config).assets
    section = PAGE.read_text().split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_]+)`", section))
    assert sorted(set(assets) - named) == []


def test_the_picture_order_is_canonical():
    shuffled = "digraph {\n\tnode [x=1]\n\tb -> c\n\ta [label=<<table><tr>2</tr><tr>1</tr></table>>]\n}\n"
    assert PICTURES.canonical(shuffled) == (
        "digraph {\n\tnode [x=1]\n\ta [label=<<table><tr>1</tr><tr>2</tr></table>>]\n\tb -> c\n}\n"
    )
