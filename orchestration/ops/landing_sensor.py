"""Wait for upstream exports: one run per new or changed file in the landing directory.

Each file version is identified by its name and content hash. The hash is the run key, so Dagster
itself refuses to launch a second run for the same file version (after a restart, a cursor reset
or a repeated tick); the cursor only spares re-reading files that have not changed. Files with a
bad name or schema, and paths that lead outside the landing directory, are reported in the
sensor's skip reason and never crash it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from orchestration.paths import landing_dir


def landing_sensor(
    job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition,
    partition_of: Callable[[str], str | None],
    problem_of: Callable[[Path], str | None],
    partitions_def: dg.PartitionsDefinition | None = None,
    folder: Callable[[], Path] = landing_dir,
    name: str = "landing_files",
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """`partition_of(file name)` gives the partition a file is for (None: not ours);
    `problem_of(path)` says why a file is unusable (None: fine)."""

    @dg.sensor(
        job=job,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts one run per new or changed file in the landing directory.",
    )
    def _landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        root = folder().resolve()
        known: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
        seen: dict[str, dict] = {}
        requests, problems = [], []
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if path.name.startswith(".") or path.is_dir():
                continue  # hidden files are exports still being written
            stat = path.stat() if path.exists() else None
            fingerprint = [stat.st_size, stat.st_mtime_ns] if stat else None
            previous = known.get(path.name)
            if previous and previous.get("fingerprint") == fingerprint:
                seen[path.name] = previous  # unchanged since the last tick
                if previous.get("problem"):
                    problems.append(previous["problem"])
                continue
            entry, request = _inspect(path, root, fingerprint, partition_of, problem_of, partitions_def)
            seen[path.name] = entry
            if entry.get("problem"):
                problems.append(entry["problem"])
            if request is not None:
                requests.append(request)
        cursor = json.dumps(seen, sort_keys=True)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        reason = "no new or changed files in " + str(root)
        if problems:
            reason += "; skipped: " + "; ".join(problems)
        return dg.SensorResult(skip_reason=reason, cursor=cursor)

    return _landing_sensor


def _inspect(path, root, fingerprint, partition_of, problem_of, partitions):
    """(cursor entry, run request or None) for one file version."""
    entry: dict = {"fingerprint": fingerprint}
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        entry["problem"] = f"{path.name}: link loop; refused"
        return entry, None
    if path.is_symlink() and target.parent != root:
        entry["problem"] = f"{path.name}: points outside the landing directory ({target}); refused"
        return entry, None
    if fingerprint is None:
        entry["problem"] = f"{path.name}: broken link; refused"
        return entry, None
    partition = partition_of(path.name)
    if partition is None:
        entry["problem"] = f"{path.name}: name does not match the expected pattern"
        return entry, None
    if partitions is not None and not partitions.has_partition_key(partition):
        entry["problem"] = f"{path.name}: no partition {partition} (outside the partitioned range)"
        entry["fingerprint"] = None  # today's file becomes runnable once its day is a partition
        return entry, None
    problem = problem_of(target)
    if problem:
        entry["problem"] = problem
        return entry, None
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    entry["sha256"] = digest
    return entry, dg.RunRequest(
        run_key=f"{path.name}@{digest[:16]}",
        partition_key=partition,
        tags={"landing/file": path.name, "landing/sha256": digest},
    )
