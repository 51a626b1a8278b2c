"""The value store at a URL: fsspec's in-memory filesystem stands in for object storage, and
file:// URLs are local folders with the local guarantees."""

import uuid

import dagster as dg
import fsspec
import numpy as np
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from sklearn.linear_model import LogisticRegression
from upath import UPath

from orchestration import StorageError, ValueStore, hamilton_assets
from orchestration.errors import MissingUpstreamError
from orchestration.storage import store as storage
from tests.orchestration import counting_flow

KEY = dg.AssetKey(["sales", "report"])


@pytest.fixture
def bucket():
    """A fresh memory:// prefix, removed afterwards (the memory filesystem is process-wide)."""
    root = f"memory://bucket-{uuid.uuid4().hex[:8]}/assets"
    yield root
    memory = fsspec.filesystem("memory")
    memory.rm(root.removeprefix("memory:/"), recursive=True)


def objects(root: str) -> list[str]:
    """Every object under the store's root, relative to it."""
    memory = fsspec.filesystem("memory")
    base = root.removeprefix("memory:/")
    return sorted(path.removeprefix(base + "/") for path in memory.find(base))


def record(monkeypatch, method: str) -> list[tuple]:
    """The arguments of each call to a MemoryFileSystem method, which still does its work."""
    calls = []
    real = getattr(MemoryFileSystem, method)

    def recorded(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, method, recorded)
    return calls


def test_round_trip_of_every_format_through_one_put_each(bucket, monkeypatch):
    puts = record(monkeypatch, "put_file")
    store = ValueStore(bucket)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    values = {
        "frame": pd.DataFrame({"a": [1, 2]}),
        "series": pd.Series([1.5], name="revenue"),
        "array": np.arange(4),
        "text": "# Report",
        "json": {"orders": 3},
        "model": model,
        "bundle": {"train": pd.DataFrame({"a": [1]}), "target": pd.Series([0], name="t")},
    }
    for name, value in values.items():
        stored = store.write(dg.AssetKey(name), value, partition_key="2026-01-02")
        assert str(stored.path).startswith(f"{bucket}/{name}/partition=2026-01-02.")
        assert stored.size_bytes > 0
    assert len(puts) == len(values)  # no temporary objects on an object store
    assert [p.split("/")[0] for p in objects(bucket)] == sorted(values)

    pd.testing.assert_frame_equal(store.read(dg.AssetKey("frame"), "2026-01-02"), values["frame"])
    pd.testing.assert_series_equal(store.read(dg.AssetKey("series"), "2026-01-02"), values["series"])
    np.testing.assert_array_equal(store.read(dg.AssetKey("array"), "2026-01-02"), values["array"])
    assert store.read(dg.AssetKey("text"), "2026-01-02") == "# Report"
    assert store.read(dg.AssetKey("json"), "2026-01-02") == {"orders": 3}
    assert store.read(dg.AssetKey("model"), "2026-01-02").predict([[0.1], [2.9]]).tolist() == [0, 1]
    bundle = store.read(dg.AssetKey("bundle"), "2026-01-02")
    pd.testing.assert_frame_equal(bundle["train"], values["bundle"]["train"])


def test_a_value_in_a_new_format_replaces_the_old_object(bucket):
    store = ValueStore(bucket)
    store.write(KEY, pd.DataFrame({"a": [1]}))
    store.write(KEY, "now a report")
    assert objects(bucket) == ["sales/report/value.txt"]
    assert store.exists(KEY) and not store.exists(KEY, "2026-01-01")
    with pytest.raises(MissingUpstreamError, match=f"nothing stored under {bucket}/sales/report"):
        store.read(KEY, "2026-01-01")


def test_a_failed_upload_leaves_the_old_value(bucket, monkeypatch):
    store = ValueStore(bucket)
    store.write(KEY, 1)

    def refuse(self, local, remote, **kwargs):
        raise PermissionError(13, "Access Denied")

    monkeypatch.setattr(MemoryFileSystem, "put_file", refuse)
    with pytest.raises(StorageError) as error:
        store.write(KEY, 2)
    assert f"{bucket}/sales/report/value.json" in str(error.value)
    assert "Access Denied" in str(error.value) and "PIPELINE_STORE_URL" in str(error.value)
    monkeypatch.undo()
    assert store.read(KEY) == 1


def test_without_an_atomic_put_a_temporary_object_is_moved_over_the_old(bucket, monkeypatch):
    monkeypatch.setattr(storage, "OBJECT_STORES", frozenset())  # memory:// as a plain filesystem
    moves = record(monkeypatch, "mv")
    store = ValueStore(bucket)
    store.write(KEY, 1)
    [(source, target)] = moves
    assert source.split("/")[-1].startswith(".value.json.") and source.endswith(".tmp")
    assert target.endswith("/sales/report/value.json")

    def crash(self, source, target, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(MemoryFileSystem, "mv", crash)
    with pytest.raises(StorageError, match="Input/output error"):
        store.write(KEY, 2)
    assert store.read(KEY) == 1
    assert objects(bucket) == ["sales/report/value.json"]  # the temporary object is gone


def test_file_url_is_a_local_folder_with_the_local_guarantees(tmp_path):
    store = ValueStore((tmp_path / "assets").as_uri())
    assert not isinstance(store.root, UPath)  # a local folder, not an object store
    stored = store.write(KEY, {"orders": 3})
    assert stored.path == tmp_path / "assets" / "sales" / "report" / "value.json"
    assert ValueStore(tmp_path / "assets").read(KEY) == {"orders": 3}

    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    (store.folder(KEY) / "value.txt").symlink_to(outside)
    stored.path.unlink()
    with pytest.raises(StorageError, match="outside the value store"):
        store.read(KEY)


def test_pipeline_store_url_sends_a_run_s_values_there(bucket, data_dir, instance, monkeypatch):
    monkeypatch.setenv("PIPELINE_STORE_URL", bucket)
    monkeypatch.delenv("FAIL_NODE", raising=False)
    counting_flow.CALLS.clear()
    result = dg.materialize([hamilton_assets(counting_flow)], instance=instance)
    assert result.success
    assert ValueStore(bucket).read(dg.AssetKey("summary")) == {"sum": 56, "rows": 4}
    assert not (data_dir / "assets").exists()
    [table] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("table")
    ]
    assert table.metadata["path"].value == f"{bucket}/table/value.parquet"
