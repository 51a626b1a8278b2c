"""Lean packaging: the required dependencies are what every user needs, the rest are extras, and a
missing extra fails with a message naming it and the pip command (orchestration/extras.py)."""

import ctypes.util
import importlib
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes.config_class import class_from_code_pointer
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from sklearn.linear_model import LogisticRegression

from orchestration import ValueStore
from orchestration.extras import EXTRAS, MissingExtraError, install_command, require
from orchestration.storage.formats import SklearnModel

PROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
MODULES_BY_EXTRA = {
    "postgres": ("dagster_postgres", "psycopg2"),
    "celery": ("dagster_celery", "celery", "redis"),
    "s3": ("s3fs",),
    "ml": ("sklearn", "skops"),
    "alerts": ("apprise",),
}


def names(requirements: list[str]) -> set[str]:
    return {Requirement(line).name.lower() for line in requirements}


@pytest.fixture
def hide(monkeypatch):
    """Makes modules unimportable, as if their extra were not installed (`None` in sys.modules);
    modules imported meanwhile are dropped afterwards, so later tests see the real ones."""
    before = dict(sys.modules)

    def hide(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)

    yield hide
    monkeypatch.undo()
    for module in set(sys.modules) - set(before):
        del sys.modules[module]
    sys.modules.update(before)


def test_required_dependencies_leave_the_extras_out():
    required = names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert names(extras[extra]) == set(packages), extra  # extras.py names what pyproject installs
        assert not required & set(packages), extra
    assert {
        "dagster",
        "dagster-webserver",
        "sf-hamilton",
        "openlineage-python",
        "universal-pathlib",
    } <= required


def test_the_dev_extra_installs_every_extra_the_tests_use():
    (self_reference,) = [r for r in map(Requirement, PROJECT["optional-dependencies"]["dev"]) if r.extras]
    assert self_reference.name == PROJECT["name"]
    assert self_reference.extras == {"postgres", "celery", "ml", "alerts"}  # no test needs s3fs


def test_requires_python_has_no_upper_bound():
    specifiers = SpecifierSet(PROJECT["requires-python"])
    assert not [s for s in specifiers if s.operator in ("<", "<=", "==", "~=", "===")]
    assert "3.10" not in specifiers
    assert all(version in specifiers for version in ("3.11", "3.12", "3.14", "4.0"))


def test_orchestration_imports_without_any_extra(hide, monkeypatch):
    assert MODULES_BY_EXTRA.keys() == EXTRAS.keys()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)  # store.py's runs ldconfig
    for module in [m for m in sys.modules if m == "orchestration" or m.startswith("orchestration.")]:
        del sys.modules[module]
    hide(*[module for modules in MODULES_BY_EXTRA.values() for module in modules])
    orchestration = importlib.import_module("orchestration")
    assert orchestration.hamilton_assets and orchestration.ValueStore


def test_a_missing_module_names_its_extra_and_the_pip_command():
    with pytest.raises(MissingExtraError) as error:
        require("postgres", "no_such_module_for_the_test", "The test")
    assert str(error.value).startswith(
        "The test needs the 'postgres' extra (dagster-postgres, psycopg2-binary)"
    )
    assert str(error.value).endswith("Fix: pip install 'hamilton-dagster-pipelines[postgres]'")
    assert error.value.name == "no_such_module_for_the_test"
    # Dagster turns a ModuleNotFoundError from dagster.yaml's storage module into a vaguer message
    assert not isinstance(error.value, ModuleNotFoundError)
    assert install_command("ml") == "pip install 'hamilton-dagster-pipelines[ml]'"
    with pytest.raises(ValueError, match="Unknown extra 'mysql'"):
        require("mysql", "json", "The test")


def test_the_postgres_storage_without_dagster_postgres(hide):
    """deploy/dagster.yaml names the class; Dagster imports it and shows our message unchanged."""
    sys.modules.pop("orchestration.ops.postgres_storage", None)  # imported anew, as a fresh process does
    hide("dagster_postgres")
    with pytest.raises(MissingExtraError, match=r"PostgreSQL instance storage .* 'postgres' extra") as error:
        class_from_code_pointer("orchestration.ops.postgres_storage", "PostgresStorage")
    assert str(error.value).endswith(install_command("postgres"))


def test_the_skops_format_without_skops(hide, tmp_path):
    store = ValueStore(tmp_path)
    hide("skops", "skops.io")
    model = LogisticRegression()
    with pytest.raises(MissingExtraError, match=r"scikit-learn models \(the skops format\) needs the 'ml'"):
        store.write(dg.AssetKey("model"), model)
    with pytest.raises(MissingExtraError, match=r"pip install 'hamilton-dagster-pipelines\[ml\]'"):
        SklearnModel().read(tmp_path / "model.skops")


def test_an_s3_store_without_s3fs(hide, tmp_path):
    hide("s3fs")
    with pytest.raises(MissingExtraError, match=r"s3:// URL needs the 's3' extra \(s3fs\)") as error:
        ValueStore("s3://bucket/assets")
    assert str(error.value).endswith(install_command("s3"))
    ValueStore(f"file://{tmp_path}")  # local stores need nothing more


def test_apprise_alerts_without_apprise(hide, monkeypatch):
    from orchestration.ops.alerts import alerting_from_env

    hide("apprise")
    monkeypatch.setenv("ALERT_APPRISE_URLS", "json://127.0.0.1:9/hook")
    with pytest.raises(
        MissingExtraError, match=r"ALERT_APPRISE_URLS .* needs the 'alerts' extra \(apprise\)"
    ) as error:
        alerting_from_env()
    assert str(error.value).endswith(install_command("alerts"))
