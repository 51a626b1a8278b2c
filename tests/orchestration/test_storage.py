"""The value store: round trips per format, atomic replacement, and refusal of foreign files."""

import os

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from orchestration import MissingUpstreamError, StorageError, ValueStore, hamilton_assets
from orchestration.storage import store as storage
from orchestration.storage.formats import DataFrameParquet
from tests.orchestration import counting_flow

KEY = dg.AssetKey(["sales", "report"])


@pytest.fixture
def store(tmp_path):
    return ValueStore(tmp_path / "assets")


@pytest.mark.parametrize(
    "value, suffix",
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), ".parquet"),
        (pd.Series([1.5, 2.5], name="revenue"), ".series.parquet"),
        (pd.Series([1, 2]), ".series.parquet"),
        (np.arange(6).reshape(2, 3), ".npy"),
        ("# Report\n\nrevenue: 1", ".txt"),
        ({"orders": 3, "share": 0.5, "top": "North", "tags": [1, 2]}, ".json"),
        (np.float64(2.5), ".json"),
    ],
)
def test_round_trip(store, value, suffix):
    stored = store.write(KEY, value)
    assert stored.path.name == "value" + suffix
    loaded = store.read(KEY)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(loaded, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value


def test_bundle_of_frames_and_model(store):
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    store.write(KEY, model)
    assert store.read(KEY).predict([[0.1], [2.9]]).tolist() == [0, 1]
    bundle = {"train": pd.DataFrame({"a": [1]}), "target": pd.Series([0], name="t")}
    assert store.write(KEY, bundle).path.name == "value.bundle.zip"
    loaded = store.read(KEY)
    pd.testing.assert_frame_equal(loaded["train"], bundle["train"])
    assert not (store.folder(KEY) / "value.skops").exists()  # the older format's file is gone


def test_partitions_are_separate_files(store):
    store.write(KEY, 1, partition_key="2026-01-01")
    store.write(KEY, 2, partition_key="2026-01-02")
    assert store.read(KEY, "2026-01-01") == 1 and store.read(KEY, "2026-01-02") == 2
    with pytest.raises(StorageError, match="cannot name a file"):
        store.write(KEY, 3, partition_key="../escape")


def test_a_failed_write_leaves_the_old_value_and_no_temporary_file(store, monkeypatch):
    store.write(KEY, pd.DataFrame({"a": [1]}))

    def crash(self, value, path, name):
        path.write_bytes(b"half a parquet file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DataFrameParquet, "write", crash)
    with pytest.raises(StorageError) as error:
        store.write(KEY, pd.DataFrame({"a": [2]}))
    assert "sales/report" in str(error.value) and "No space left on device" in str(error.value)
    monkeypatch.undo()
    assert store.read(KEY)["a"].tolist() == [1]
    assert sorted(p.name for p in store.folder(KEY).iterdir()) == ["value.parquet"]


def test_unusable_location_names_the_path(tmp_path):
    blocked = tmp_path / "assets"
    blocked.write_text("a file where the store's folder should be")  # fails even for root
    with pytest.raises(StorageError) as error:
        ValueStore(blocked).write(KEY, 1)
    assert str(blocked / "sales" / "report") in str(error.value)
    assert "PIPELINE_DATA_DIR" in str(error.value)


def test_missing_value_says_how_to_materialize_it(store):
    with pytest.raises(MissingUpstreamError, match="dagster asset materialize --select sales/report"):
        store.read(KEY)


def test_symlink_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("1")
    store.folder(KEY).mkdir(parents=True)
    (store.folder(KEY) / "value.json").symlink_to(outside)
    with pytest.raises(StorageError, match="outside the value store"):
        store.read(KEY)


def test_model_with_foreign_types_is_not_loaded(store, tmp_path):
    import skops.io
    from sklearn.pipeline import FunctionTransformer

    model = FunctionTransformer(func=os.getcwd)
    path = store.folder(KEY) / "value.skops"
    path.parent.mkdir(parents=True)
    skops.io.dump(model, path)
    with pytest.raises(StorageError, match="not loaded"):
        store.read(KEY)


def test_unknown_type_is_refused_before_anything_is_written(store):
    with pytest.raises(StorageError, match="no safe storage format"):
        store.write(KEY, object())
    assert not store.folder(KEY).exists()


def test_a_step_flushes_its_store_once_when_it_ends(data_dir, instance, monkeypatch):
    """Values are renamed into place unflushed; the step makes them durable with one syncfs of the
    store's file system, not an fsync per value."""
    flushed = []
    real = storage._syncfs
    monkeypatch.setattr(storage, "_syncfs", lambda fd: flushed.append(os.fstat(fd).st_ino) or real(fd))
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("a value was fsync'd on its own"))
    result = dg.materialize([hamilton_assets(counting_flow)], instance=instance)
    assert result.success
    assert flushed == [os.stat(data_dir / "assets").st_ino]  # once, on the store's root


def test_without_syncfs_the_store_flushes_every_file_system(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(storage, "_syncfs", None)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    store = ValueStore(tmp_path)
    store.write(dg.AssetKey("a"), 1)
    store.sync()
    assert synced == [True]
