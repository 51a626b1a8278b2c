"""A backfill of the shipped sales dataflow: one run per day against one run for the whole range.

Both go through the Dagster CLI as an operator would (`dagster asset materialize`, each run in its
own process on a fresh on-disk SQLite instance, sample data for the days generated offline):

  (a) per day   `--partition <day>` once per day, one run each (what the daemon does without a
                single-run backfill policy);
  (b) range     `--partition-range <first>...<last>`, one run (the shipped BackfillPolicy).

Reported: wall time of each, alternating (a) and (b) `--repeat` times, and the ratio b/a.

    python benchmarks/bench_backfill.py [--days 7] [--repeat 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
START = date(2026, 1, 1)


def materialize(home: Path, data: Path, *partition_args: str) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PIPELINE_DATA_DIR": str(data),
        "HAMILTON_TELEMETRY_ENABLED": "false",
    }
    subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "orchestration.definitions",
            "--select",
            "group:sales_analytics",
            *partition_args,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def timed(days: list[str], per_day: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        home, data = Path(tmp, "home"), Path(tmp, "data")
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        sys.path.insert(0, str(ROOT))
        from hamilton_pipelines.sample_data import write_sample_sales

        write_sample_sales(data / "landing", days=len(days), start=days[0])
        started = time.perf_counter()
        if per_day:
            for day in days:
                materialize(home, data, "--partition", day)
        else:
            materialize(home, data, "--partition-range", f"{days[0]}...{days[-1]}")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    days = [(START + timedelta(days=i)).isoformat() for i in range(args.days)]
    per_day, ranged = [], []
    for _ in range(args.repeat):
        per_day.append(timed(days, per_day=True))
        ranged.append(timed(days, per_day=False))
    result = {
        "days": args.days,
        "per_day_runs_s": round(statistics.median(per_day), 2),
        "one_range_run_s": round(statistics.median(ranged), 2),
        "ratio_range_over_per_day": round(statistics.median(ranged) / statistics.median(per_day), 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
