"""Properties of `hamilton_assets` over random dataflow shapes (hypothesis).

Each example writes a generated Hamilton module to a file (Hamilton hashes function source), with
random node names, return kinds (int → JSON, str → text, DataFrame → Parquet) and random edges
from earlier functions. Every function appends its name to the module's `CALLS` list (Hamilton
runs in a worker thread of this process), so the executed nodes can be counted.

(a) one asset per function, whose dependencies are exactly the Hamilton graph's;
(b) after a full materialization, a random selection executes exactly the selected functions, each
    once; the unselected upstream assets it reads are loaded from storage (proved by changing their
    stored values first); and every value equals plain Hamilton's for the same inputs.

Function-scoped pytest fixtures do not mix with hypothesis, so each example makes its own temporary
data directory and Dagster instance (on disk, SQLite). Lineage is off here (OPENLINEAGE_DISABLED):
its background delivery would outlive an example's temporary folder, and it is not under test.
"""

from __future__ import annotations

import importlib.util
import keyword
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.utils import DISALLOWED_NAMES
from hamilton import driver
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestration import ValueStore, hamilton_assets

KINDS = {"int": "int", "text": "str", "frame": "pd.DataFrame"}
RESERVED = {*DISALLOWED_NAMES, "pd", "calls"}  # Dagster's reserved op/asset names, our helpers
SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LOADED = "Loaded from storage instead of recomputing: "


@dataclass(frozen=True)
class Shape:
    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]  # indices of earlier functions
    kinds: tuple[str, ...]

    def deps(self) -> dict[str, set[str]]:
        return {name: {self.names[p] for p in self.parents[i]} for i, name in enumerate(self.names)}

    def source(self) -> str:
        lines = [
            "import pandas as pd",
            "",
            "CALLS = []",
            "",
            "",
            "def _v(x):",
            "    if isinstance(x, pd.DataFrame):",
            "        return int(x['v'].iloc[0])",
            "    return int(x)",
        ]
        for i, name in enumerate(self.names):
            params = ", ".join(f"{self.names[p]}: {KINDS[self.kinds[p]]}" for p in self.parents[i])
            terms = " + ".join([*(f"_v({self.names[p]}) * {p + 2}" for p in self.parents[i]), str(i)])
            lines += [
                "",
                "",
                f"def {name}({params}) -> {KINDS[self.kinds[i]]}:",
                f"    CALLS.append({name!r})",
                f"    value = ({terms}) % 1009",
                f"    return {wrap(self.kinds[i], 'value')}",
            ]
        return "\n".join(lines) + "\n"


def wrap(kind: str, expression: str) -> str:
    return {
        "int": expression,
        "text": f"str({expression})",
        "frame": f"pd.DataFrame({{'v': [{expression}]}})",
    }[kind]


def as_int(value) -> int:
    return int(value["v"].iloc[0]) if isinstance(value, pd.DataFrame) else int(value)


def of_kind(kind: str, number: int):
    return {"int": number, "text": str(number), "frame": pd.DataFrame({"v": [number]})}[kind]


names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name) and name not in RESERVED
)


@st.composite
def shapes(draw, min_nodes: int = 1, max_nodes: int = 8) -> Shape:
    n = draw(st.integers(min_nodes, max_nodes))
    node_names = draw(st.lists(names, min_size=n, max_size=n, unique=True))
    parents = tuple(
        tuple(
            sorted(
                draw(
                    st.lists(
                        st.integers(0, i - 1),
                        unique=True,
                        min_size=draw(st.sampled_from([1, 1, 1, 0])),  # mostly connected, sometimes isolated
                        max_size=min(3, i),
                    )
                )
            )
        )
        if i
        else ()
        for i in range(n)
    )
    kinds = tuple(draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=n, max_size=n)))
    return Shape(tuple(node_names), parents, kinds)


def load(shape: Shape, folder: Path):
    name = f"prop_{uuid.uuid4().hex[:10]}"
    path = folder / f"{name}.py"
    path.write_text(shape.source())
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Example:
    """A temporary data directory and environment for one hypothesis example."""

    def __enter__(self) -> Self:
        self._folder = tempfile.TemporaryDirectory()
        self.root = Path(self._folder.name)
        self._patch = pytest.MonkeyPatch()
        self._patch.setenv("PIPELINE_DATA_DIR", str(self.root / "data"))
        self._patch.setenv("OPENLINEAGE_DISABLED", "true")
        for name in ("PIPELINE_STORE_URL", "PROMETHEUS_PUSHGATEWAY_URL", "PROGRESS_SLACK_WEBHOOK_URL"):
            self._patch.delenv(name, raising=False)
        self.modules: list[str] = []
        return self

    def home(self) -> str:
        (self.root / "home").mkdir(exist_ok=True)
        return str(self.root / "home")

    def module(self, shape: Shape):
        module = load(shape, self.root)
        self.modules.append(module.__name__)
        return module

    def __exit__(self, *exc) -> None:
        for name in self.modules:
            sys.modules.pop(name, None)
        self._patch.undo()
        self._folder.cleanup()


@SETTINGS
@given(shape=shapes())
def test_one_asset_per_function_with_exactly_the_hamilton_graphs_dependencies(shape):
    with Example() as example:
        module = example.module(shape)

        assets = hamilton_assets(module)

        graph = driver.Builder().with_modules(module).build()
        hamilton_deps = {
            v.name: set(v.required_dependencies) | set(v.optional_dependencies)
            for v in graph.list_available_variables()
            if not v.is_external_input
        }
        dagster_deps = {
            spec.key.to_user_string(): {dep.asset_key.to_user_string() for dep in spec.deps}
            for spec in assets.specs
        }
        assert len(list(assets.specs)) == len(shape.names)
        assert dagster_deps == hamilton_deps == shape.deps()


def loaded_from_storage(instance, run_id: str) -> set[str]:
    lines = [e.user_message for e in instance.all_logs(run_id) if (e.user_message or "").startswith(LOADED)]
    assert len(lines) <= 1
    return set(lines[0][len(LOADED) :].split(", ")) if lines else set()


@SETTINGS
@given(shape=shapes(min_nodes=2), data=st.data())
def test_a_selection_runs_exactly_the_selected_nodes_and_loads_its_upstream(shape, data):
    # Never everything (the full materialization covers that); later nodes first, as they have upstream.
    choice = st.lists(
        st.sampled_from(shape.names[::-1]), min_size=1, max_size=len(shape.names) - 1, unique=True
    )
    selected = data.draw(choice, label="selected")
    index = {name: i for i, name in enumerate(shape.names)}
    deps = shape.deps()
    loads = {parent for name in selected for parent in deps[name] if parent not in selected}
    event("the selection loads upstream assets" if loads else "the selection loads nothing")

    with Example() as example, dg.instance_for_test(temp_dir=example.home()) as instance:
        module = example.module(shape)
        assets = hamilton_assets(module)
        store = ValueStore(example.root / "data" / "assets")

        full = dg.materialize([assets], instance=instance)
        assert full.success
        assert sorted(module.CALLS) == sorted(shape.names)  # each function once
        module.CALLS.clear()
        plain = driver.Builder().with_modules(module).build().execute(list(shape.names))
        assert {n: as_int(store.read(dg.AssetKey(n))) for n in shape.names} == {
            n: as_int(plain[n]) for n in shape.names
        }

        # Change what is stored for the upstream the selection reads: a recomputation would not see it.
        changed = {n: of_kind(shape.kinds[index[n]], as_int(plain[n]) + 1000) for n in loads}
        for name, value in changed.items():
            store.write(dg.AssetKey(name), value)
        module.CALLS.clear()

        subset = dg.materialize([assets], instance=instance, selection=selected)

        assert subset.success
        assert sorted(module.CALLS) == sorted(selected)  # exactly the selection, each once
        assert sorted(
            e.asset_key.to_user_string() for e in subset.get_asset_materialization_events()
        ) == sorted(selected)
        assert loaded_from_storage(instance, subset.run_id) == loads
        module.CALLS.clear()
        expected = driver.Builder().with_modules(module).build().execute(selected, overrides=changed)
        for name in shape.names:
            stored = as_int(store.read(dg.AssetKey(name)))
            if name in selected:
                assert stored == as_int(expected[name]), name
            elif name in changed:
                assert stored == as_int(changed[name]), name  # loaded, never rewritten
            else:
                assert stored == as_int(plain[name]), name  # untouched
