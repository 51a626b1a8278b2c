"""What OpenLineage costs a run when its backend is dead, and whether any event gets lost.

Two parts, each in this process on its own temporary on-disk SQLite instance (`--instance-dir`
puts it elsewhere, e.g. /dev/shm on a noisy disk), alternating between configurations run by run
(the order rotated every round):

  generated  `hamilton_assets` of a generated layered dataflow of --nodes nodes (1,000 by default;
             bench_core.py's generator) in configurations off, hang and refuse.
             Target: median(hang) / median(off) <= 1.02 and median(refuse) / median(off) <= 1.02.
  shipped    both shipped dataflows (`sales_analytics` on generated sample sales, `ml_pipeline`,
             21 assets) in configurations off, hang, refuse and ok. Ratios reported, no target:
             a run takes well under a second, so lineage's fixed work per run (the run's START,
             the end-of-run hook) shows as a few percent; this part shows no event is lost.

  off      OPENLINEAGE_DISABLED=true (the reference);
  hang     OPENLINEAGE_URL -> a local HTTP backend that accepts requests and never answers;
  refuse   OPENLINEAGE_URL -> a local port nothing listens on;
  ok       OPENLINEAGE_URL -> a local backend that answers 201 (reported, no target).

After each part's timed runs the dead backends come back, everything still spooled is delivered
with `LineageDelivery.deliver_pending()`, and every event is attributed, by its (parent) runId, to
the configuration whose run emitted it. Target: 0 lost, every materialized asset of every run has
its COMPLETE event and every run its START and COMPLETE.

`--breakdown` also times, per run, the project's lineage functions (by wrapping them at runtime),
the CPU the delivery threads used, the value store's sync and Python's garbage collections.

    python benchmarks/bench_lineage.py [--parts generated shipped] [--nodes 1000] [--repeat 5]
                                       [--json out.json] [--breakdown]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["HAMILTON_TELEMETRY_ENABLED"] = "false"

import dagster as dg  # noqa: E402
from dagster import DagsterEventType  # noqa: E402

from bench_core import load_dataflow  # noqa: E402
from hamilton_pipelines import ml_pipeline, sales_analytics  # noqa: E402
from hamilton_pipelines.sample_data import write_sample_sales  # noqa: E402
from orchestration import hamilton_assets  # noqa: E402
from orchestration.lineage import client as lineage_client  # noqa: E402
from orchestration.lineage import runs as lineage_runs  # noqa: E402
from orchestration.lineage.delivery import LineageSpool  # noqa: E402
from orchestration.lineage.observer import OpenLineageObserver  # noqa: E402
from orchestration.lineage.runs import dagster_run  # noqa: E402
from orchestration.storage import store as storage  # noqa: E402
from tests.support.http_receiver import LineageReceiver, free_port  # noqa: E402

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the same in every configuration
BACKENDS = ("hang", "refuse", "ok")
PARTS = {  # configurations (the first is the reference) and the target for dead/off
    "generated": (("off", "hang", "refuse"), 1.02),
    "shipped": (("off", "hang", "refuse", "ok"), None),
}
TARGETED = ("hang", "refuse")
RECOVERY_TIMEOUT_S = 180.0  # at least; more for big spools (RECOVERY_S_PER_EVENT each)
RECOVERY_S_PER_EVENT = 0.05


def set_lineage_env(config: str, data_dir: Path, urls: dict[str, str]) -> None:
    """Only this configuration's OpenLineage variables (openlineage-python adds aliases of
    OPENLINEAGE_URL to the environment, OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__*; they
    go too, so each configuration starts clean)."""
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[name]
    os.environ["PIPELINE_DATA_DIR"] = str(data_dir)
    if config == "off":
        os.environ["OPENLINEAGE_DISABLED"] = "true"
    else:
        os.environ["OPENLINEAGE_URL"] = urls[config]


class Breakdown:
    """Seconds spent per run in the project's lineage functions (nested: observer and hooks include
    the spool writes and drains they make). Functions that no longer exist are skipped."""

    def __init__(self):
        self.current: dict[str, float] = {}
        self._cpu: dict[int, float] = {}
        observer = OpenLineageObserver
        callbacks = (
            "step_started",
            "asset_started",
            "asset_running",
            "asset_materialized",
            "asset_failed",
            "before_report",
            "step_finished",
        )
        for method in callbacks:
            self._wrap(observer, method, "observer (all callbacks)")
        self._wrap(lineage_runs, "_end_run_if_last_step", "hooks (end of run)")
        # every spool write goes through emit_all (emit calls it); wrapping both would count twice
        self._wrap(lineage_client, "emit_all", "  emit (claims + spool write, one SQLite commit)")
        self._wrap(lineage_client, "drain", "  drain (wait at step end)")
        # not lineage's, but it flushes the spool's writes too: one syncfs of the data directory
        self._wrap(storage.ValueStore, "sync", "value store sync (step end)")
        self._time_gc()

    def _time_gc(self) -> None:
        """Python's garbage collections, by generation: lineage's allocations can make more of them."""
        started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                label = f"garbage collection, generation {info['generation']}"
                self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - started[0]

        gc.callbacks.append(on_gc)

    def _wrap(self, owner, name: str, label: str) -> None:
        function = getattr(owner, name, None)
        if function is None:
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        """This run's seconds per label, and the CPU seconds every delivery thread (of any
        configuration: they share this process) used since the last call."""
        taken, self.current = self.current, {}
        cpu = _delivery_cpu_s()
        taken["delivery threads (CPU)"] = sum(cpu.get(t, 0.0) - self._cpu.get(t, 0.0) for t in cpu)
        self._cpu = cpu
        return taken


def _delivery_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of each live OpenLineage delivery thread, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for thread in threading.enumerate():
        if thread.name == "openlineage-delivery" and thread.native_id is not None:
            try:
                fields = (
                    Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
                )
            except OSError:  # the thread just ended
                continue
            cpu[thread.native_id] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return cpu


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


def _events(payload) -> list[dict]:
    """The events of one spooled row (one event, or a list if rows ever hold several)."""
    return payload if isinstance(payload, list) else [payload]


def identity(event: dict) -> str:
    """The whole event, canonically: a re-sent event is the same, any other event differs."""
    return json.dumps(event, sort_keys=True)


def recover(config: str, data_dir: Path, urls: dict[str, str], timeout_s: float) -> tuple[int, float]:
    """Delivers what `config` left spooled; returns (still pending, seconds)."""
    set_lineage_env(config, data_dir, urls)
    target = lineage_client.delivery()
    started = time.monotonic()
    while True:
        _, pending = target.deliver_pending()  # (0, n) while the delivery thread holds the lock
        if pending == 0 or time.monotonic() - started > timeout_s:
            return pending, time.monotonic() - started
        time.sleep(0.1)


def run_part(
    part: str,
    configs: tuple[str, ...],
    make_assets,
    repeat: int,
    breakdown: Breakdown | None,
    workdir: Path,
    instance_dir: Path,
) -> dict:
    """Warm-up and `repeat` rotated rounds of one run per configuration, then the delivery check."""
    backend_configs = [c for c in configs if c in BACKENDS]
    workdir.mkdir()
    # Building definitions caches code versions under the data dir: keep them in this part's folder.
    os.environ["PIPELINE_DATA_DIR"] = str(workdir / "definitions")
    assets, asset_count = make_assets(workdir)
    data_dirs = {config: workdir / f"data_{config}" for config in configs}
    backends = {c: LineageReceiver(c, port=free_port() if c == "refuse" else 0) for c in backend_configs}
    urls = {config: backend.url for config, backend in backends.items()}
    dagster_home = instance_dir / f"dagster_home_{part}"
    dagster_home.mkdir(parents=True)
    instance = dg.DagsterInstance.local_temp(str(dagster_home))
    runs: dict[str, list[str]] = {config: [] for config in configs}  # Dagster run ids, warm-up first
    samples: dict[str, list[float]] = {config: [] for config in configs}
    parts: dict[str, list[dict[str, float]]] = {config: [] for config in configs}
    try:
        print(
            f"{part}: {asset_count} assets; warm-up, one run per configuration", file=sys.stderr, flush=True
        )
        for config in configs:
            set_lineage_env(config, data_dirs[config], urls)
            seconds, run_id = materialize(assets, instance)
            runs[config].append(run_id)
            print(f"  warm-up {config} {seconds:.3f} s", file=sys.stderr, flush=True)
            if breakdown:
                breakdown.take()
        for r in range(repeat):
            shift = r % len(configs)
            order = configs[shift:] + configs[:shift]  # each configuration in each position
            for config in order:
                set_lineage_env(config, data_dirs[config], urls)
                seconds, run_id = materialize(assets, instance)
                samples[config].append(seconds)
                runs[config].append(run_id)
                if breakdown:
                    parts[config].append(breakdown.take())
            shown = "  ".join(f"{c} {samples[c][-1]:.3f} s" for c in configs)
            print(
                f"  round {r + 1}/{repeat} ({order[0]} first): {shown}  (load {os.getloadavg()[0]:.2f})",
                file=sys.stderr,
                flush=True,
            )

        # What each configuration wrote: its spool now, plus what its backend already took.
        # (Read after the timed runs, so counting costs them nothing.)
        spools = {c: LineageSpool(data_dirs[c] / "lineage" / "spool") for c in configs}
        spooled = {
            c: [event for _, payload in spools[c].pending() for event in _events(payload)] for c in configs
        }
        received_while_down = {c: backends[c].events for c in backend_configs}
        # Evidence that the dead backends were tried: requests held, the delivery's last error.
        held = {c: backends[c].held for c in backend_configs}
        last_error = {}
        for c in backend_configs:
            set_lineage_env(c, data_dirs[c], urls)
            target = lineage_client.delivery()
            error, since = target.last_error, getattr(target, "in_flight_since", None)
            if error is None:  # reset when a delivery attempt starts
                error = "none yet: an attempt is under way" + (
                    f", one send in flight for {time.monotonic() - since:.1f} s" if since is not None else ""
                )
            last_error[c] = error if len(error) < 200 else error[:200] + "..."
        print(f"{part}: backends back, delivering what is spooled", file=sys.stderr, flush=True)
        for backend in backends.values():
            backend.set_mode("ok")
        recovery = {
            c: recover(c, data_dirs[c], urls, max(RECOVERY_TIMEOUT_S, RECOVERY_S_PER_EVENT * len(spooled[c])))
            for c in backend_configs
        }
        delivered = {c: backends[c].events for c in backend_configs}
        owner = {
            dagster_run(instance, run_id).openlineage_run_id: config
            for config in configs
            for run_id in runs[config]
        }
        materialized = {  # Dagster's count of materialized assets per run
            run_id: len(
                instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
            )
            for config in configs
            for run_id in runs[config]
        }
        ol_run = {
            run_id: dagster_run(instance, run_id).openlineage_run_id
            for config in configs
            for run_id in runs[config]
        }
    finally:
        for backend in backends.values():
            backend.close()
        instance.dispose()

    medians = {c: statistics.median(samples[c]) for c in configs}
    results = {
        "assets": asset_count,
        "configs": list(configs),
        "repeat": repeat,
        "samples_s": samples,
        "median_s": medians,
        "ratios": {c: medians[c] / medians["off"] for c in configs if c != "off"},
        # the same, paired: each run against the off run of its own round (less drift)
        "round_ratios": {
            c: [run / off for run, off in zip(samples[c], samples["off"])] for c in configs if c != "off"
        },
        "target_ratio": PARTS[part][1],
        "delivery": {},
    }
    if breakdown:
        labels = sorted({label for config in configs for p in parts[config] for label in p}, key=str.strip)
        results["breakdown_median_s"] = {
            config: {label: statistics.median(p.get(label, 0.0) for p in parts[config]) for label in labels}
            for config in configs
        }

    # Every event that reached a backend, and every event written, by the configuration it belongs to.
    arrived: dict[str, dict[str, list[str]]] = defaultdict(lambda: {b: [] for b in backend_configs})
    per_ol_run: dict[str, list[dict]] = defaultdict(list)
    for backend, events in delivered.items():
        for event in events:
            arrived[owner.get(root_run_id(event), "unknown")][backend].append(identity(event))
            per_ol_run[root_run_id(event)].append(event)
    written: dict[str, set[str]] = defaultdict(set)
    foreign_spooled = Counter()
    for config in configs:
        for event in spooled[config]:
            belongs = owner.get(root_run_id(event), "unknown")
            written[belongs].add(identity(event))
            foreign_spooled[config] += belongs != config
    for events in received_while_down.values():
        for event in events:
            written[owner.get(root_run_id(event), "unknown")].add(identity(event))

    for config in backend_configs:
        everywhere = [e for backend in backend_configs for e in arrived[config][backend]]
        missing_complete = missing_run_events = 0
        events_per_asset = []
        for run_id in runs[config]:
            events = per_ol_run[ol_run[run_id]]
            asset_completes = {
                e["run"]["runId"]
                for e in events
                if e["eventType"] == "COMPLETE" and "parent" in e["run"].get("facets", {})
            }
            run_types = {e["eventType"] for e in events if "parent" not in e["run"].get("facets", {})}
            missing_complete += max(0, materialized[run_id] - len(asset_completes))
            missing_run_events += len({"START", "COMPLETE"} - run_types)
            events_per_asset.append(len({identity(e) for e in events}) / max(1, materialized[run_id]))
        results["delivery"][config] = {
            "runs": len(runs[config]),
            "events_written": len(written[config]),
            "events_per_asset": statistics.median(events_per_asset),
            "spooled_before_recovery": len(spooled[config]),
            "in_this_spool_from_other_configs": foreign_spooled[config],
            "received_while_down": len(received_while_down[config]),
            "received_by_its_backend": len(arrived[config][config]),
            "received_by_other_backends": {
                b: len(arrived[config][b]) for b in backend_configs if b != config
            },
            "duplicates": len(everywhere) - len(set(everywhere)),
            "lost": len(written[config] - set(everywhere)),
            "assets_without_complete": missing_complete,
            "run_start_or_complete_missing": missing_run_events,
            "requests_held_while_down": held[config],
            "last_error_while_down": last_error[config],
            "still_spooled": recovery[config][0],
            "recovery_s": recovery[config][1],
        }
    results["off_spooled"] = len(spooled["off"])
    results["off_received"] = sum(len(arrived["off"][b]) for b in backend_configs)
    results["unattributed_received"] = (
        sum(len(v) for v in arrived["unknown"].values()) if "unknown" in arrived else 0
    )
    return results


def generated_assets(nodes: int):
    def make(workdir: Path):
        module = load_dataflow(workdir, "generated", nodes)
        return [hamilton_assets(module)], nodes  # values stored under each configuration's data dir

    return make


def shipped_assets(workdir: Path):
    landing = workdir / "landing"
    write_sample_sales(landing)
    assets = [
        hamilton_assets(sales_analytics, config={"sales_scope": "all", "landing_dir": str(landing)}),
        hamilton_assets(ml_pipeline),
    ]
    return assets, sum(len(a.keys) for a in assets)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_part(part: str, results: dict, title: str) -> None:
    configs, target = results["configs"], results["target_ratio"]
    print(f"\n### {title}: {results['assets']} assets, median of {results['repeat']} alternating runs\n")
    print(
        "| configuration | median run | ratio to off | target | result "
        "| median of per-round ratios | runs (s, by round) |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: | --- |")
    for config in configs:
        ratio = results["ratios"].get(config, 1.0)
        paired = statistics.median(results["round_ratios"].get(config, [1.0]))
        if config in TARGETED and target is not None:
            goal, result = f"≤ {target:.2f}", verdict(ratio <= target)
        else:
            goal, result = "—", "reference" if config == "off" else "reported"
        shown = ", ".join(f"{s:.2f}" for s in results["samples_s"][config])
        print(
            f"| {config} | {results['median_s'][config]:.3f} s | {ratio:.3f} | {goal} | {result} "
            f"| {paired:.3f} | {shown} |"
        )
    if "breakdown_median_s" in results:
        print("\nper run, median s spent in lineage functions\n")
        print("| function | " + " | ".join(configs) + " |")
        print("| --- |" + " ---: |" * len(configs))
        for label in next(iter(results["breakdown_median_s"].values())):
            values = " | ".join(f"{results['breakdown_median_s'][c][label]:.3f}" for c in configs)
            print(f"| {label.strip()} | {values} |")
    print("\nafter the backends came back (events by the configuration whose run emitted them)\n")
    print(
        "| configuration | runs | events written | per asset | spooled | at its backend | at another backend "
        "| duplicates | lost | assets without COMPLETE | run START/COMPLETE missing | still spooled "
        "| recovered in | result |"
    )
    print("| --- |" + " ---: |" * 12 + " --- |")
    for config, d in results["delivery"].items():
        ok = (
            d["lost"] == 0
            and d["still_spooled"] == 0
            and d["assets_without_complete"] == 0
            and d["run_start_or_complete_missing"] == 0
        )
        elsewhere = sum(d["received_by_other_backends"].values()) + d["in_this_spool_from_other_configs"]
        print(
            f"| {config} | {d['runs']} | {d['events_written']} | {d['events_per_asset']:.2f} "
            f"| {d['spooled_before_recovery']} | {d['received_by_its_backend']} | {elsewhere} "
            f"| {d['duplicates']} | {d['lost']} | {d['assets_without_complete']} "
            f"| {d['run_start_or_complete_missing']} | {d['still_spooled']} | {d['recovery_s']:.1f} s "
            f"| {verdict(ok)} |"
        )
    for config, d in results["delivery"].items():
        if config in TARGETED:
            print(
                f"\n{config} while down: {d['requests_held_while_down']} request(s) held by the backend, "
                f"the delivery's last error: {d['last_error_while_down']}"
            )
    print(
        f"\noff: {results['off_spooled']} spooled, {results['off_received']} received (expected 0 and 0); "
        f"events no run accounts for: {results['unattributed_received']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the generated dataflow")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per configuration (median)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--breakdown", action="store_true", help="time the lineage functions per run")
    parser.add_argument(
        "--instance-dir",
        help="where the Dagster instance lives (e.g. /dev/shm on a noisy disk); default: the temporary folder",
    )
    args = parser.parse_args()
    breakdown = Breakdown() if args.breakdown else None
    # Python logging (the delivery's and urllib3's retry warnings) is dropped the same way everywhere.
    logging.getLogger().addHandler(logging.NullHandler())

    results = {
        "instance_dir": args.instance_dir or "temporary folder",
        "repeat": args.repeat,
        "load_average_before": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    titles = {
        "generated": f"generated dataflow of {args.nodes:,} nodes",
        "shipped": "shipped dataflows (sales_analytics + ml_pipeline)",
    }
    makers = {"generated": generated_assets(args.nodes), "shipped": shipped_assets}
    caller_env = {
        k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE") or k == "PIPELINE_DATA_DIR"
    }
    # One temporary folder for everything, removed at the very end: background delivery threads of
    # earlier parts (idle once their spool is delivered) never see their folder disappear mid-run.
    with tempfile.TemporaryDirectory(prefix="bench_lineage_") as tmp:
        os.environ["PIPELINE_DATA_DIR"] = str(Path(tmp) / "data")  # nothing goes to the project's data/
        try:
            for part in args.parts:
                configs, _ = PARTS[part]
                instance_dir = Path(args.instance_dir or tmp) / f"{Path(tmp).name}_instance"
                try:
                    results[part] = run_part(
                        part, configs, makers[part], args.repeat, breakdown, Path(tmp) / part, instance_dir
                    )
                finally:
                    shutil.rmtree(instance_dir, ignore_errors=True)
                print_part(part, results[part], titles[part])
                sys.stdout.flush()
        finally:
            for name in [k for k in os.environ if k.startswith("OPENLINEAGE") or k == "PIPELINE_DATA_DIR"]:
                del os.environ[name]
            os.environ.update(caller_env)
    results["load_average_after"] = os.getloadavg()[0]
    print(
        f"\nload average {results['load_average_before']:.2f} before and "
        f"{results['load_average_after']:.2f} after on {results['cpus']} CPUs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
