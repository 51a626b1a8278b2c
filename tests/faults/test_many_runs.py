"""Many runs on the local (on-disk SQLite) instance: 40 back to back in one process, as a
long-lived code server or daemon runs them, and 10 at once as separate `dagster asset materialize`
processes. None may fail, and nothing may pile up: threads, open files and child processes of the
test process are counted before and after, and no process of the runs may outlive them.
(Child processes of the test process that ran before, e.g. a session's PostgreSQL server, count
the same before and after.)
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import ValueStore, hamilton_assets
from orchestration.lineage.delivery import LineageSpool
from tests.faults import many_flow
from tests.support import BIN, ROOT, migrate_instance
from tests.support.processes import command_line, descendants

pytestmark = pytest.mark.slow  # ~15 s each: 40 runs one after another, 10 CLI runs at once
RUNS = 40  # a leak of one file or thread per run shows far above the noise allowed
CONCURRENT = 10
FD_NOISE = 5  # SQLite and logging may keep a few more files open once warmed up
THREAD_NOISE = 2


def open_files() -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.append(os.readlink(fd))
        except OSError:  # closed while listing (the listing's own descriptor)
            pass
    return found


def tasks() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def snapshot() -> dict:
    gc.collect()
    return {
        "fds": len(open_files()),
        "threads": threading.active_count(),
        "tasks": tasks(),
        "children": len(descendants(os.getpid())),
    }


def test_forty_runs_back_to_back_leak_no_thread_file_or_process(data_dir, instance, figures):
    assets = hamilton_assets(many_flow)
    for _ in range(3):  # warm up: imports, SQLite connections, the lineage delivery thread
        assert dg.materialize([assets], instance=instance).success
    before, files_before = snapshot(), open_files()

    seconds = []
    for _ in range(RUNS):
        started = time.monotonic()
        result = dg.materialize([assets], instance=instance)
        seconds.append(time.monotonic() - started)
        assert result.success

    after = snapshot()
    assert after["fds"] - before["fds"] <= FD_NOISE, sorted(set(open_files()) - set(files_before))
    assert after["threads"] - before["threads"] <= THREAD_NOISE, [t.name for t in threading.enumerate()]
    assert after["tasks"] - before["tasks"] <= THREAD_NOISE
    assert after["children"] == before["children"]  # (a session's PostgreSQL server may be running)
    runs = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert len(runs) == RUNS + 3
    assert ValueStore(data_dir / "assets").read(dg.AssetKey("total")) == {"rows": 10, "sum": 45}
    events = (data_dir / "lineage" / "events.jsonl").read_text().splitlines()
    assert len(events) == (RUNS + 3) * (2 + 2 * 2)  # run START/COMPLETE, each asset's START/COMPLETE
    assert len({json.loads(e)["run"]["runId"] for e in events}) == (RUNS + 3) * 3
    figures[f"{RUNS} runs back to back (in-process, SQLite)"] = {
        "mean s": round(statistics.mean(seconds), 3),
        "p95 s": round(statistics.quantiles(seconds, n=20)[-1], 3),
        "max s": round(max(seconds), 3),
        "before": before,
        "after": after,
    }


@pytest.mark.services  # ten `dagster asset materialize` processes
def test_ten_runs_at_once_all_succeed_and_leave_no_process(tmp_path, figures):
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_DATA_DIR": str(data),
        "HAMILTON_TELEMETRY_ENABLED": "false",
    }
    env = {k: v for k, v in env.items() if not k.startswith("OPENLINEAGE")}  # lineage to events.jsonl
    migrate_instance(env)
    before = snapshot()

    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "tests.faults.many_defs", "--select", "*"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(CONCURRENT)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    took = time.monotonic() - started

    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
        assert "database is locked" not in output and "Traceback" not in output, output[-4000:]
    time.sleep(1)  # Dagster's log watchers exit once their run process is gone
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(home) in command_line(int(pid))]
    assert left == [], [command_line(int(pid)) for pid in left]
    assert snapshot()["children"] == before["children"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * CONCURRENT
        windows = [(r.start_time, r.end_time) for r in records]
    assert ValueStore(data / "assets").read(dg.AssetKey("total")) == {"rows": 10, "sum": 45}
    # Every event is delivered or still spooled, for whoever delivers next (here: `flush`): a run
    # may end while another process holds the delivery lock for longer than its drain waits.
    log = data / "lineage" / "events.jsonl"
    delivered = log.read_text().splitlines()
    left = len(LineageSpool(data / "lineage" / "spool"))
    assert len(delivered) + left == CONCURRENT * 6
    if left:
        flush = [str(BIN / "python"), "-m", "orchestration.lineage.cli", "flush"]
        subprocess.run(flush, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({json.dumps(e, sort_keys=True) for e in events}) == len(events) == CONCURRENT * 6
    assert len({e["run"]["runId"] for e in events}) == CONCURRENT * 3
    most_at_once = max(sum(s <= t < e for s, e in windows) for t, _ in windows)
    figures["10 runs at once (CLI processes, SQLite)"] = {
        "wall s": round(took, 1),
        "most runs running at one moment": most_at_once,
        "lineage events still spooled after the last run": left,
    }
