"""Stored values are read only from inside the value store, and nothing in it is ever unpickled.

tests/orchestration/test_storage.py already covers a value file linked outside the store, skops
models with foreign types and `../escape` as a partition key on write. These add what is missing:
`..` in partition keys on load, `..` in asset keys, linked asset folders, link loops, planted
pickle files, and pickle bytes hidden behind every format's suffix (including the two real ways a
pickle hides inside a "safe" format: object-dtype `.npy` and pyarrow's `arrow.py_extension_type`).

Every pickle payload here would create a sentinel file when unpickled (`open(path, "w")`), so "never
executed" is checked by the sentinel's absence; a control test shows the payload does fire.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration import (
    MissingUpstreamError,
    StorageError,
    ValueStore,
    hamilton_assets,
)
from tests.conftest import step_failure

KEY = dg.AssetKey(["sales", "report"])


class _Payload:
    """Unpickling this opens (creates) `path`: proof that a pickle was executed."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture
def store(tmp_path) -> ValueStore:
    return ValueStore(tmp_path / "assets")


@pytest.fixture
def sentinel(tmp_path) -> Path:
    return tmp_path / "PICKLE_WAS_EXECUTED"


def evil_pickle(sentinel: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps(_Payload(sentinel), protocol=protocol)


def plant(store: ValueStore, name: str, content: bytes, key: dg.AssetKey = KEY) -> Path:
    folder = store.folder(key)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_the_payload_does_execute_when_unpickled(sentinel):
    """Control: without it, the sentinel checks below could not tell a refused pickle from a dud."""
    pickle.loads(evil_pickle(sentinel))
    assert sentinel.exists()


# -- `..` and links ---------------------------------------------------------------------------


@pytest.mark.parametrize("partition", ["..", ".", "../escape", "a/../../b", "..\\b", ""])
def test_partition_keys_that_could_leave_the_folder_are_refused_on_load(store, tmp_path, partition):
    (tmp_path / "escape.json").write_text("1")  # what `../escape` would reach
    store.write(KEY, 2, partition_key="2026-01-01")
    with pytest.raises(StorageError, match="cannot name a file"):
        store.read(KEY, partition)
    with pytest.raises(StorageError, match="cannot name a file"):
        store.exists(KEY, partition)
    with pytest.raises(StorageError, match="cannot name a file"):
        store.write(KEY, 3, partition_key=partition)
    assert store.read(KEY, "2026-01-01") == 2


def test_dotdot_in_an_asset_key_never_reads_outside_the_store(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "value.json").write_text('"not ours"')
    store.write(KEY, 1)  # the store exists, so <root>/../outside resolves
    with pytest.raises(StorageError, match="cannot name a folder inside the value store"):
        store.read(dg.AssetKey(["..", "outside"]))


def test_dotdot_in_an_asset_key_never_writes_outside_the_store(store, tmp_path):
    with pytest.raises(StorageError):
        store.write(dg.AssetKey(["..", "escaped"]), 1)
    assert not (tmp_path / "escaped").exists()


def test_a_linked_asset_folder_leading_outside_is_refused_on_load(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "value.json").write_text("41")
    store.folder(KEY).parent.mkdir(parents=True)
    store.folder(KEY).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="outside the value store"):
        store.read(KEY)


def test_a_linked_asset_folder_leading_outside_is_never_written_through(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "value.json").write_text("41")
    store.folder(KEY).parent.mkdir(parents=True)
    store.folder(KEY).symlink_to(outside, target_is_directory=True)
    try:
        store.write(KEY, "new value")
    except StorageError:
        pass
    assert sorted(p.name for p in outside.iterdir()) == ["value.json"]
    assert (outside / "value.json").read_text() == "41"


def test_a_value_file_link_is_replaced_not_written_through(store, tmp_path):
    """Writing over a planted link replaces the link itself; the file it pointed to is untouched."""
    outside = tmp_path / "precious.json"
    outside.write_text('"keep me"')
    store.folder(KEY).mkdir(parents=True)
    (store.folder(KEY) / "value.json").symlink_to(outside)
    store.write(KEY, {"fresh": 1})
    assert outside.read_text() == '"keep me"'
    assert not (store.folder(KEY) / "value.json").is_symlink()
    assert store.read(KEY) == {"fresh": 1}


def test_a_link_loop_in_the_store_is_refused_with_a_storage_error(store):
    store.folder(KEY).mkdir(parents=True)
    loop = store.folder(KEY) / "value.json"
    loop.symlink_to(loop)
    with pytest.raises(StorageError):
        store.read(KEY)


# -- pickle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["value.pkl", "value.pickle", "value.joblib", "value.json.pkl", "value"])
def test_a_planted_pickle_file_is_never_loaded(store, sentinel, name):
    plant(store, name, evil_pickle(sentinel))
    assert not store.exists(KEY)
    with pytest.raises(MissingUpstreamError, match="has never been materialized"):
        store.read(KEY)
    assert not sentinel.exists()


SUFFIXES = [".parquet", ".series.parquet", ".npy", ".skops", ".txt", ".json", ".bundle.zip"]


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_pickle_bytes_behind_a_format_suffix_are_never_executed(store, sentinel, suffix, protocol):
    plant(store, "value" + suffix, evil_pickle(sentinel, protocol))
    try:
        value = store.read(KEY)
    except (ValueError, OSError, zipfile.BadZipFile, StorageError):  # refusing is fine; executing is not
        value = None
    assert not sentinel.exists()
    if value is not None:  # only UTF-8 text may come back, and only as inert text
        assert suffix == ".txt" and isinstance(value, str)


def test_an_object_array_npy_is_refused_without_unpickling(store, sentinel):
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload(sentinel)], dtype=object), allow_pickle=True)
    plant(store, "value.npy", buffer.getvalue())
    with pytest.raises(StorageError, match="allow_pickle=False"):
        store.read(KEY)
    assert not sentinel.exists()


def test_parquet_with_a_pickled_arrow_extension_type_loads_as_plain_data(store, sentinel):
    """pyarrow < 14.0.1 unpickled `arrow.py_extension_type` metadata on read (CVE-2023-47248)."""
    payload = evil_pickle(sentinel)

    class PickledExtension(pa.ExtensionType):
        def __init__(self):
            super().__init__(pa.int64(), "arrow.py_extension_type")

        def __arrow_ext_serialize__(self):
            return payload

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

    pa.register_extension_type(PickledExtension())
    try:
        column = pa.ExtensionArray.from_storage(PickledExtension(), pa.array([1, 2]))
        path = plant(store, "value.parquet", b"")
        pq.write_table(pa.table({"v": column}), path)
    finally:
        pa.unregister_extension_type("arrow.py_extension_type")
    assert pq.read_schema(path).field("v").metadata[b"ARROW:extension:metadata"] == payload

    loaded = store.read(KEY)

    assert not sentinel.exists()
    assert loaded["v"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "entry",
    ["model.pkl", "../../escaped.json", "/abs.json", "ok/../../escaped.json", "evil.npy.pkl"],
)
def test_a_bundle_with_a_foreign_or_escaping_entry_is_refused(store, sentinel, tmp_path, entry):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fine.json", "1")
        archive.writestr(entry, evil_pickle(sentinel))
    plant(store, "value.bundle.zip", buffer.getvalue())
    with pytest.raises(StorageError, match="unexpected entry"):
        store.read(KEY)
    assert not sentinel.exists()
    assert not (tmp_path / "escaped.json").exists() and not list(tmp_path.rglob("escaped.json"))


def test_a_bundle_entry_with_an_object_array_is_refused(store, sentinel):
    npy = io.BytesIO()
    np.save(npy, np.array([_Payload(sentinel)], dtype=object), allow_pickle=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("frame.npy", npy.getvalue())
    plant(store, "value.bundle.zip", buffer.getvalue())
    with pytest.raises(StorageError, match="allow_pickle=False"):
        store.read(KEY)
    assert not sentinel.exists()


# -- in a run ---------------------------------------------------------------------------------

FLOW = """
import pandas as pd


def base() -> pd.DataFrame:
    return pd.DataFrame({"x": [1, 2, 3]})


def total(base: pd.DataFrame) -> int:
    return int(base["x"].sum())
"""


def test_a_run_never_unpickles_a_planted_upstream_and_keeps_the_old_value(
    make_module, data_dir, instance, sentinel
):
    assets = hamilton_assets(make_module(FLOW))
    assert dg.materialize([assets], instance=instance).success
    store = ValueStore(data_dir / "assets")
    stored = store.folder(dg.AssetKey("base")) / "value.parquet"
    stored.write_bytes(evil_pickle(sentinel))  # pickle bytes where the Parquet file was
    (stored.parent / "value.pkl").write_bytes(evil_pickle(sentinel))  # and a pickle beside it

    result = dg.materialize([assets], instance=instance, selection=["total"], raise_on_error=False)

    assert not result.success
    assert not sentinel.exists()
    assert store.read(dg.AssetKey("total")) == 6  # the previous value, untouched


def test_a_corrupt_stored_upstream_fails_the_run_naming_the_asset_and_the_fix(
    make_module, data_dir, instance, sentinel
):
    assets = hamilton_assets(make_module(FLOW))
    assert dg.materialize([assets], instance=instance).success
    stored = ValueStore(data_dir / "assets").folder(dg.AssetKey("base")) / "value.parquet"
    stored.write_bytes(evil_pickle(sentinel))

    result = dg.materialize([assets], instance=instance, selection=["total"], raise_on_error=False)

    message = step_failure(result)
    assert str(stored) in message and "base" in message
    assert "dagster asset materialize --select base" in message
