"""What OpenLineage costs a run when its backend is dead, and whether any event gets lost.

Materializes both shipped dataflows (`sales_analytics` on generated sample sales, `ml_pipeline`)
in one `dg.materialize` on a temporary on-disk SQLite instance, in one process, alternating
between three configurations:

  (i)   off      OPENLINEAGE_DISABLED=true;
  (ii)  hang     OPENLINEAGE_URL -> a local HTTP backend that accepts requests and never answers;
  (iii) refuse   OPENLINEAGE_URL -> a local port nothing listens on;
  (iv)  ok       OPENLINEAGE_URL -> a local backend that answers 201 (reference, no target).

Targets: median(ii) / median(i) <= 1.05 and median(iii) / median(i) <= 1.05. Then the dead
backends come back ("ok"), everything still spooled is delivered with
`LineageDelivery.deliver_pending()`, and the events each backend received are counted against the
events that were written. Target: 0 lost.

`--breakdown` also times, per run, the project's lineage functions (by wrapping them at runtime):
the observer's callbacks, the step hooks, and within them claims, spool writes and `drain()`.

    python benchmarks/bench_lineage.py [--repeat 5] [--json out.json] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["HAMILTON_TELEMETRY_ENABLED"] = "false"

import dagster as dg  # noqa: E402

from hamilton_pipelines import ml_pipeline, sales_analytics  # noqa: E402
from hamilton_pipelines.sample_data import write_sample_sales  # noqa: E402
from orchestration import hamilton_assets, lineage, lineage_hooks  # noqa: E402
from tests.lineage.http_receiver import LineageReceiver, free_port  # noqa: E402

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the same in every configuration
CONFIGS = ("off", "hang", "refuse", "ok")
BACKENDS = ("hang", "refuse", "ok")
TARGET_RATIO = 1.05
RECOVERY_TIMEOUT_S = 180.0


def set_lineage_env(config: str, data_dir: Path, urls: dict[str, str]) -> None:
    """Only this configuration's OpenLineage variables (openlineage-python adds aliases of
    OPENLINEAGE_URL to the environment; they are removed too, so each configuration starts clean)."""
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[name]
    os.environ["PIPELINE_DATA_DIR"] = str(data_dir)
    if config == "off":
        os.environ["OPENLINEAGE_DISABLED"] = "true"
    else:
        os.environ["OPENLINEAGE_URL"] = urls[config]


class Breakdown:
    """Seconds spent per run in the project's lineage functions (nested: observer and hooks include
    the claims, spool writes and drains they make)."""

    def __init__(self):
        self.current: dict[str, float] = {}
        observer = lineage.OpenLineageObserver
        for method in ("step_started", "asset_started", "asset_materialized", "asset_failed", "step_finished"):
            self._wrap(observer, method, "observer (all callbacks)")
        self._wrap(lineage_hooks, "_end_run_if_last_step", "hooks (end of run)")
        self._wrap(lineage, "emit", "  emit (claim + spool write, SQLite)")
        self._wrap(lineage, "drain", "  drain (wait at step end)")

    def _wrap(self, owner, name: str, label: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        taken, self.current = self.current, {}
        return taken


def materialize(assets, instance) -> tuple[float, str]:
    started = time.perf_counter()
    result = dg.materialize(assets, instance=instance, run_config=QUIET)
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    return seconds, result.run_id


def root_run_id(event: dict) -> str:
    """The OpenLineage runId of the Dagster run an event belongs to."""
    parent = event["run"].get("facets", {}).get("parent")
    return parent["run"]["runId"] if parent else event["run"]["runId"]


def recover(config: str, data_dir: Path, urls: dict[str, str]) -> tuple[int, float]:
    """Delivers what `config` left spooled; returns (still pending, seconds)."""
    set_lineage_env(config, data_dir, urls)
    target = lineage.delivery()
    started = time.monotonic()
    while True:
        _, pending = target.deliver_pending()  # (0, n) while the delivery thread holds the lock
        if pending == 0 or time.monotonic() - started > RECOVERY_TIMEOUT_S:
            return pending, time.monotonic() - started
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per configuration (median)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--breakdown", action="store_true", help="time the lineage functions per run")
    args = parser.parse_args()
    breakdown = Breakdown() if args.breakdown else None
    # Python logging (the delivery's and urllib3's retry warnings) is dropped the same way everywhere.
    logging.getLogger().addHandler(logging.NullHandler())

    with tempfile.TemporaryDirectory(prefix="bench_lineage_") as tmp:
        workdir = Path(tmp)
        landing = workdir / "landing"
        write_sample_sales(landing)
        assets = [
            hamilton_assets(sales_analytics, config={"sales_scope": "all", "landing_dir": str(landing)}),
            hamilton_assets(ml_pipeline),
        ]
        events_per_run = sum(2 * len(a.keys) for a in assets) + 2  # asset START/COMPLETE + the run's
        data_dirs = {config: workdir / f"data_{config}" for config in CONFIGS}
        backends = {
            "hang": LineageReceiver("hang"),
            "refuse": LineageReceiver("refuse", port=free_port()),
            "ok": LineageReceiver("ok"),
        }
        urls = {config: backend.url for config, backend in backends.items()}
        (workdir / "dagster_home").mkdir()
        instance = dg.DagsterInstance.local_temp(str(workdir / "dagster_home"))
        runs: dict[str, list[str]] = {config: [] for config in CONFIGS}  # Dagster run ids
        samples: dict[str, list[float]] = {config: [] for config in CONFIGS}
        parts: dict[str, list[dict[str, float]]] = {config: [] for config in CONFIGS}
        try:
            print(f"warm-up: one run per configuration ({events_per_run} events per run)", file=sys.stderr)
            for config in CONFIGS:
                set_lineage_env(config, data_dirs[config], urls)
                runs[config].append(materialize(assets, instance)[1])
                if breakdown:
                    breakdown.take()
            for r in range(args.repeat):
                shift = r % len(CONFIGS)
                order = CONFIGS[shift:] + CONFIGS[:shift]  # each configuration in each position
                for config in order:
                    set_lineage_env(config, data_dirs[config], urls)
                    seconds, run_id = materialize(assets, instance)
                    samples[config].append(seconds)
                    runs[config].append(run_id)
                    if breakdown:
                        parts[config].append(breakdown.take())
                shown = "  ".join(f"{c} {samples[c][-1]:.3f} s" for c in CONFIGS)
                print(f"  repeat {r + 1}/{args.repeat}: {shown}", file=sys.stderr, flush=True)

            spooled = {c: len(lineage.LineageSpool(data_dirs[c] / "lineage" / "spool")) for c in CONFIGS}
            received_while_down = {c: len(backends[c].events) for c in BACKENDS}
            print("backends back: delivering what is spooled", file=sys.stderr, flush=True)
            for backend in backends.values():
                backend.set_mode("ok")
            recovery = {c: recover(c, data_dirs[c], urls) for c in BACKENDS}
            delivered = {c: backends[c].events for c in BACKENDS}
            owner = {
                lineage.dagster_run(instance, run_id).openlineage_run_id: config
                for config in CONFIGS for run_id in runs[config]
            }
        finally:
            for backend in backends.values():
                backend.close()
            instance.dispose()

    medians = {c: statistics.median(samples[c]) for c in CONFIGS}
    results = {
        "repeat": args.repeat,
        "events_per_run": events_per_run,
        "samples_s": samples,
        "median_s": medians,
        "ratio_hang_off": medians["hang"] / medians["off"],
        "ratio_refuse_off": medians["refuse"] / medians["off"],
        "ratio_ok_off": medians["ok"] / medians["off"],
        "target_ratio": TARGET_RATIO,
        "delivery": {},
    }
    if breakdown:
        labels = sorted({label for config in CONFIGS for p in parts[config] for label in p}, key=str.strip)
        results["breakdown_median_s"] = {
            config: {label: statistics.median(p.get(label, 0.0) for p in parts[config]) for label in labels}
            for config in CONFIGS
        }
    # Every event received anywhere, by the configuration whose run it belongs to.
    arrived: dict[str, dict[str, list[str]]] = {c: {b: [] for b in BACKENDS} for c in CONFIGS}
    for backend, events in delivered.items():
        for event in events:
            arrived[owner.get(root_run_id(event), "off")][backend].append(json.dumps(event, sort_keys=True))
    for config in BACKENDS:
        written = len(runs[config]) * events_per_run
        everywhere = [e for backend in BACKENDS for e in arrived[config][backend]]
        results["delivery"][config] = {
            "runs": len(runs[config]),
            "events_written": written,
            "spooled_before_recovery": spooled[config],
            "received_while_down": received_while_down[config],
            "received_by_its_backend": len(arrived[config][config]),
            "received_by_other_backends": {b: len(arrived[config][b]) for b in BACKENDS if b != config},
            "duplicates": len(everywhere) - len(set(everywhere)),
            "lost": written - len(set(everywhere)),
            "still_spooled": recovery[config][0],
            "recovery_s": recovery[config][1],
        }
    results["off_spooled"] = spooled["off"]

    print(f"\nmaterialize sales_analytics + ml_pipeline, {args.repeat} timed runs each (median, s)")
    for config in CONFIGS:
        print(f"  {config:<7} {medians[config]:7.3f}   (" + ", ".join(f"{s:.3f}" for s in samples[config]) + ")")
    for config in ("hang", "refuse"):
        ratio = results[f"ratio_{config}_off"]
        ok = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  {config}/off = {ratio:.3f}   target <= {TARGET_RATIO}  {ok}")
    print(f"  ok/off = {results['ratio_ok_off']:.3f}   (reference: a working backend)")
    if breakdown:
        print("\nper run, median s spent in lineage functions")
        print(f"  {'':<28}" + "".join(f"{c:>9}" for c in CONFIGS))
        for label in next(iter(results["breakdown_median_s"].values())):
            print(f"  {label:<28}" + "".join(f"{results['breakdown_median_s'][c][label]:>9.3f}" for c in CONFIGS))
    print("\nafter the backends came back (events by the configuration whose run emitted them)")
    for config, d in results["delivery"].items():
        ok = "ok" if d["lost"] == 0 and d["still_spooled"] == 0 else "MISSED"
        elsewhere = ", ".join(f"{n} at {b}" for b, n in d["received_by_other_backends"].items() if n)
        print(
            f"  {config:<7} written {d['events_written']}, spooled {d['spooled_before_recovery']}, "
            f"at its backend {d['received_by_its_backend']}, at another backend {elsewhere or 0}, "
            f"duplicates {d['duplicates']}, lost {d['lost']}, still spooled {d['still_spooled']}, "
            f"recovered in {d['recovery_s']:.1f} s   target 0 lost  {ok}"
        )
    print(f"  off     spooled {spooled['off']} (expected 0)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
