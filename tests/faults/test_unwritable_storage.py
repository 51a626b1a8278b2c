"""The value store becomes unwritable in the middle of a run: its filesystem turns read-only, or
fills up.

Permission bits cannot do this here: the tests run as root, and root ignores them (a chmod-ed
folder stays writable). Instead the store's folder is a real filesystem of its own, a tmpfs with a
size limit, mounted for the test: `mount -o remount,ro` makes it read-only for everyone, root
included (EROFS, as a disk the kernel remounted read-only after errors), and a value larger than
the space left fails its write with ENOSPC. Mounting needs root (CAP_SYS_ADMIN), as CI has.

The Dagster instance and the lineage spool live elsewhere, as they would on a separate disk.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import ValueStore, hamilton_assets
from tests.conftest import step_failure

pytestmark = pytest.mark.services  # `mount` and `umount`
FLOW = """
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


def small(version: int) -> pd.DataFrame:
    '''Three rows.'''
    return pd.DataFrame({"version": [version] * 3})


def big(small: pd.DataFrame, big_rows: int = 10) -> pd.DataFrame:
    '''`big_rows` rows of noise; waits for the gate file `$FAULT_GATE` when it is set.'''
    gate = os.environ.get("FAULT_GATE")
    if gate:
        Path(gate + ".waiting").touch()
        while not Path(gate).exists():
            time.sleep(0.01)
    version = int(small["version"].iloc[0])
    return pd.DataFrame({"version": np.full(big_rows, version),
                         "noise": np.random.default_rng(version).random(big_rows)})


def report(big: pd.DataFrame) -> dict:
    '''A summary.'''
    return {"version": int(big["version"].iloc[0]), "rows": len(big)}
"""
SIZE_MB = 4


def run_config(name: str, version: int, big_rows: int = 10) -> dict:
    return {"ops": {name: {"config": {"version": version, "big_rows": big_rows}}}}


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], check=False, capture_output=True, text=True)
    assert done.returncode == 0, f"mount {' '.join(args)}: {done.stderr}"


@pytest.fixture
def small_store(data_dir) -> Path:
    """$PIPELINE_DATA_DIR/assets on a tmpfs of SIZE_MB, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "These tests mount a small tmpfs and need root (CI runs as root); permission "
            "bits alone cannot make a folder unwritable for root.",
            pytrace=False,
        )
    folder = data_dir / "assets"
    folder.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(folder))
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def flow(make_module, monkeypatch):
    monkeypatch.delenv("FAULT_GATE", raising=False)
    module = make_module(FLOW)
    return module, hamilton_assets(module)


def stored(store: Path) -> dict[str, object]:
    """Every stored value, read back (a torn file would fail to read)."""
    values = ValueStore(store)
    return {
        "small": int(values.read(dg.AssetKey("small"))["version"].iloc[0]),
        "big": int(values.read(dg.AssetKey("big"))["version"].iloc[0]),
        "report": values.read(dg.AssetKey("report")),
    }


def hidden_files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob(".*"))


def test_a_store_turning_read_only_mid_run_fails_naming_the_path_and_keeps_earlier_values(
    flow, small_store, instance, tmp_path, monkeypatch, figures
):
    module, assets = flow
    assert dg.materialize([assets], instance=instance, run_config=run_config(module.__name__, 1)).success
    assert stored(small_store) == {"small": 1, "big": 1, "report": {"version": 1, "rows": 10}}

    gate = tmp_path / "gate"
    monkeypatch.setenv("FAULT_GATE", str(gate))

    def turn_read_only_once_small_is_stored():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Path(f"{gate}.waiting").exists() and stored(small_store)["small"] == 2:
                mount("-o", "remount,ro", str(small_store))
                break
            time.sleep(0.01)
        gate.touch()  # let `big` finish, read-only or not

    helper = threading.Thread(target=turn_read_only_once_small_is_stored)
    helper.start()
    started = time.monotonic()
    result = dg.materialize(
        [assets], instance=instance, run_config=run_config(module.__name__, 2), raise_on_error=False
    )
    seconds = time.monotonic() - started
    helper.join()

    assert not result.success
    target = small_store / "big" / "value.parquet"
    message = step_failure(result)
    assert f"Could not store asset big at {target}: " in message, message
    assert "Read-only file system" in message, message
    assert "Fix: make the folder writable" in message
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["small"]
    assert stored(small_store) == {"small": 2, "big": 1, "report": {"version": 1, "rows": 10}}
    assert hidden_files(small_store) == []

    mount("-o", "remount,rw", str(small_store))  # the disk is back: the next run stores everything
    monkeypatch.delenv("FAULT_GATE")
    assert dg.materialize([assets], instance=instance, run_config=run_config(module.__name__, 2)).success
    assert stored(small_store) == {"small": 2, "big": 2, "report": {"version": 2, "rows": 10}}
    figures["store read-only mid-run"] = {
        "run failed after s": round(seconds, 1),
        "error": message.splitlines()[0],
    }


def test_a_store_filling_up_mid_run_fails_naming_the_path_and_leaves_no_partial_file(
    flow, small_store, instance, figures
):
    module, assets = flow
    assert dg.materialize([assets], instance=instance, run_config=run_config(module.__name__, 1)).success
    used_before = _used_bytes(small_store)

    # About 16 MB of Parquet into a 4 MB filesystem: the write fails part way through.
    result = dg.materialize(
        [assets],
        instance=instance,
        raise_on_error=False,
        run_config=run_config(module.__name__, 2, big_rows=1_000_000),
    )

    assert not result.success
    target = small_store / "big" / "value.parquet"
    message = step_failure(result)
    assert f"Could not store asset big at {target}: " in message, message
    assert "No space left on device" in message, message
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["small"]
    assert stored(small_store) == {"small": 2, "big": 1, "report": {"version": 1, "rows": 10}}
    assert hidden_files(small_store) == []  # the partial temporary file was removed
    assert _used_bytes(small_store) - used_before < 64 * 1024  # and its space is free again

    assert dg.materialize([assets], instance=instance, run_config=run_config(module.__name__, 3)).success
    assert stored(small_store) == {"small": 3, "big": 3, "report": {"version": 3, "rows": 10}}
    figures["store full mid-run"] = {"filesystem MB": SIZE_MB, "error": message.splitlines()[0]}


def _used_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize
