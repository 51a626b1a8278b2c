"""A damaged lineage spool (`$PIPELINE_DATA_DIR/lineage/spool/spool.db` overwritten or truncated):
runs go on with one warning, the damaged file is kept aside once however many processes find it at
the same moment, a new spool starts, and lineage flows again."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import hamilton_assets
from orchestration.lineage import client
from orchestration.lineage.delivery import LineageSpool
from tests.orchestration import counting_flow
from tests.support import ROOT

PROCESSES = 4
EVENTS_EACH = 25
EMITTER = f"""
import sys, time
from pathlib import Path
from orchestration.lineage.delivery import LineageSpool
folder, go, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
spool = LineageSpool(folder)
while not go.exists():
    time.sleep(0.005)
for i in range({EVENTS_EACH}):
    spool.put({{"process": name, "n": i}})
"""


def damaged_spool(folder: Path, how: str) -> None:
    """A spool holding 300 events, damaged as a disk error or a careless copy would."""
    spool = LineageSpool(folder)
    spool.put_all([({"old": i, "pad": "x" * 500}, None, "") for i in range(300)])
    spool._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every event in spool.db itself
    spool._forget_connection()
    size = spool.path.stat().st_size
    with open(spool.path, "r+b") as file:
        if how == "overwritten":
            file.write(b"not a database" * 8)
        else:
            file.truncate(size // 2)


def kept_aside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("spool.db.damaged-"))


@pytest.mark.parametrize("how", ["overwritten", "truncated"])
def test_a_damaged_spool_is_kept_aside_and_a_new_one_takes_the_events(how, tmp_path, caplog):
    folder = tmp_path / "spool"
    damaged_spool(folder, how)
    spool = LineageSpool(folder)
    with caplog.at_level(logging.WARNING, logger="orchestration.lineage.delivery"):
        assert spool.put({"new": 1}) and spool.put({"new": 2})
    assert [event for _, event in spool.pending()] == [{"new": 1}, {"new": 2}]
    [kept] = [name for name in kept_aside(folder) if not name.endswith(("-wal", "-shm"))]
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"{folder / 'spool.db'} is damaged" in warning and kept in warning
    assert "runs in progress may send a START or an end event a second time" in warning


@pytest.mark.services  # several processes finding the damage at the same moment
def test_processes_finding_the_damage_at_once_set_it_aside_once_and_lose_nothing_after(tmp_path):
    folder, go = tmp_path / "spool", tmp_path / "go"
    damaged_spool(folder, "overwritten")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    emitters = [
        subprocess.Popen(
            [sys.executable, "-c", EMITTER, str(folder), str(go), f"p{i}"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    time.sleep(2.0)  # every process imported and waiting
    go.touch()
    stderr = [process.communicate(timeout=120)[1] for process in emitters]
    assert [process.returncode for process in emitters] == [0] * PROCESSES, stderr
    assert sum(text.count("is damaged") for text in stderr) == 1, stderr
    assert len([name for name in kept_aside(folder) if not name.endswith(("-wal", "-shm"))]) == 1
    events = [event for _, event in LineageSpool(folder).pending()]
    assert sorted((e["process"], e["n"]) for e in events) == [
        (f"p{i}", n) for i in range(PROCESSES) for n in range(EVENTS_EACH)
    ]


def test_a_run_goes_on_and_its_lineage_flows_after_the_damage(data_dir, instance, caplog, monkeypatch):
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    damaged_spool(data_dir / "lineage" / "spool", "truncated")
    with caplog.at_level(logging.WARNING, logger="orchestration.lineage.delivery"):
        assert dg.materialize([hamilton_assets(counting_flow)], instance=instance).success
    assert sum("is damaged" in r.getMessage() for r in caplog.records) == 1
    target = client.delivery()
    assert target.flush(30) == 0
    lines = (data_dir / "lineage" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 2 * 5  # the run, and START and COMPLETE of each of its five assets
    client.close_deliveries()
