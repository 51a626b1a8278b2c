"""What `hamilton_assets` costs against the linear floor of Hamilton plus Dagster themselves.

For a synthetic layered dataflow of N nodes, each measured in a fresh subprocess after a warm-up:

  raw      Hamilton alone: `driver.execute()` of every node on a prebuilt driver;
  dagster  Dagster alone: N do-nothing assets with the same edges in multi-assets of 50 specs
           (N / 50 steps), each body yielding one `MaterializeResult` per asset;
  single   the same N specs in ONE multi-asset (Dagster 1.13 looks each output up among all of
           them, so this grows quadratically: only measured up to --single-max nodes);
  patched  `dagster` with this project's fixes of Dagster's per-output costs installed
           (`install_step_patches`), which `ours` runs with: how much of a ratio below 1 is those
           fixes rather than a small cost of our own (reported, no target);
  ours     `hamilton_assets(module, store_root=...)` materialized, everything on (storage,
           metadata, progress events, OpenLineage with its default file transport).

floor = raw + dagster, the baseline a skeptic would choose; it grows linearly. Dagster runs use
`dg.materialize` (in-process executor) on an on-disk SQLite instance, console logger at CRITICAL.
Events per asset are all the Dagster events of the timed run (`instance.all_logs(run_id)`) / N.

Targets: ours / floor <= 1.10 at every size; ours' ms per asset at the largest size / at the
smallest <= 1.15; events per asset of ours <= the floor's + 0.1.

    python benchmarks/bench_core.py [--sizes 200 1000 5000] [--repeat 1] [--json out.json]
                                    [--single-max 1000] [--profile DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import inspect
import json
import os
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 10  # nodes per layer: depth N / 10 stays far below Hamilton's recursion limit
WARMUP_NODES = 20
SPECS_PER_ASSET = 50  # the floor's multi-asset size: Dagster's per-output lookup stays linear in N
SINGLE_MAX = 1000  # the single multi-asset takes over 18 minutes at 5,000 nodes in Dagster 1.13
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the same for all Dagster runs
TARGET_RATIO, TARGET_GROWTH, TARGET_EXTRA_EVENTS = 1.10, 1.15, 0.1
KINDS = ("raw", "dagster", "patched", "ours", "single")


# -- the synthetic dataflow (bench_lineage.py and others import these) ----------------------------


def dataflow_source(n: int, prefix: str = "n", seed: int = 0, width: int = WIDTH) -> str:
    """Layers of `width` nodes; each node reads one or two nodes of the layer before."""
    rng = random.Random(seed)
    functions = []
    for i in range(n):
        layer = i // width
        previous = range((layer - 1) * width, layer * width)
        parents = sorted(rng.sample(previous, rng.randint(1, 2))) if layer else []
        params = ", ".join(f"{prefix}{p}: int" for p in parents)
        total = " + ".join([*(f"{prefix}{p}" for p in parents), str(i)])
        functions.append(f"def {prefix}{i}({params}) -> int:\n    return ({total}) % 997\n")
    return "\n\n".join(functions)


def load_dataflow(folder: Path, name: str, n: int, width: int = WIDTH):
    """Writes the module to a file and imports it, so Hamilton can hash each function's source."""
    path = folder / f"{name}.py"
    path.write_text(dataflow_source(n, prefix=name[0], width=width))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def functions_of(module):
    """The module's functions in definition order, which is topological."""
    return [f for f in vars(module).values() if inspect.isfunction(f)]


def spec_asset(name: str, functions):
    """A multi-asset of bare specs with the functions' edges; it only reports materializations,
    one per asset in topological order."""
    import dagster as dg

    specs = [dg.AssetSpec(f.__name__, deps=list(inspect.signature(f).parameters)) for f in functions]

    @dg.multi_asset(name=name, specs=specs, can_subset=True)  # subsettable, as ours is
    def _asset(context):
        selected = context.selected_asset_keys
        for spec in specs:
            if spec.key in selected:
                yield dg.MaterializeResult(asset_key=spec.key)

    return _asset


# -- measurements: each returns the zero-argument call to time; Dagster ones return a run id ----


def raw(module, instance, workdir):
    from hamilton import driver

    dr = driver.Builder().with_modules(module).build()
    names = [v.name for v in dr.list_available_variables()]

    def run():
        dr.execute(names)

    return run


def dagster(module, instance, workdir):
    fns = functions_of(module)
    parts = [
        spec_asset(f"{module.__name__}_{i // SPECS_PER_ASSET}", fns[i : i + SPECS_PER_ASSET])
        for i in range(0, len(fns), SPECS_PER_ASSET)
    ]
    return _materialize(parts, instance)


def patched(module, instance, workdir):
    from orchestration.execution.dagster_patches import install_step_patches

    assert install_step_patches(), "the patches do not apply to this Dagster version"
    return dagster(module, instance, workdir)


def single(module, instance, workdir):
    return _materialize([spec_asset(f"single_{module.__name__}", functions_of(module))], instance)


def ours(module, instance, workdir):
    from orchestration import hamilton_assets

    return _materialize([hamilton_assets(module, store_root=str(workdir / "store"))], instance)


def _materialize(assets, instance):
    import dagster as dg

    def run():
        result = dg.materialize(assets, instance=instance, run_config=QUIET)
        assert result.success
        return result.run_id

    return run


MEASUREMENTS = {f.__name__: f for f in (raw, dagster, patched, single, ours)}


def worker(kind: str, n: int, workdir: Path, profile: str | None) -> dict:
    """Runs in its own process: warms up on a small dataflow, then times the real one once."""
    import dagster as dg

    profiles = _profile_threads() if profile else []
    instance_dir = Path(os.environ.get("BENCH_INSTANCE_DIR") or workdir) / f"instance_{workdir.name}"
    instance_dir.mkdir()
    instance = dg.DagsterInstance.local_temp(str(instance_dir))
    measure = MEASUREMENTS[kind]
    measure(load_dataflow(workdir, "warmup", WARMUP_NODES), instance, workdir)()
    call = measure(load_dataflow(workdir, "flow", n), instance, workdir)
    if profile:
        profiles.append(cProfile.Profile())
        profiles[-1].enable()
    start = time.perf_counter()
    run_id = call()
    elapsed = time.perf_counter() - start
    if profile:
        profiles[-1].disable()
        pstats.Stats(*profiles).dump_stats(profile)
    events = Counter()
    if run_id is not None:  # every event the run stored, by type (user log lines as "LOG")
        for entry in instance.all_logs(run_id):
            events[entry.dagster_event.event_type_value if entry.dagster_event else "LOG"] += 1
    instance.dispose()
    if instance_dir.parent != workdir:
        shutil.rmtree(instance_dir)
    return {"seconds": elapsed, "events": sum(events.values()), "events_by_type": dict(events)}


def _profile_threads() -> list[cProfile.Profile]:
    """Profiles every thread started from now on (Hamilton's, background lineage delivery)."""
    profiles = []
    run = threading.Thread.run

    def profiled_run(thread):
        profiles.append(cProfile.Profile())
        profiles[-1].runcall(run, thread)

    threading.Thread.run = profiled_run
    return profiles


# -- driver ---------------------------------------------------------------------------------------


def run_worker(kind: str, n: int, profile: str | None = None, instance_dir: str | None = None) -> dict:
    """One measurement in a fresh process whose state (instance, data, lineage) is all temporary."""
    with tempfile.TemporaryDirectory(prefix="bench_core_") as tmp:
        folder = Path(tmp)
        (folder / "dagster_home").mkdir()
        # OpenLineage stays on, as by default, but writes JSON lines under the temporary data dir.
        (folder / "openlineage.yml").write_text("transport:\n  type: console\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
        env.update(
            HAMILTON_TELEMETRY_ENABLED="false",
            DAGSTER_HOME=str(folder / "dagster_home"),
            PIPELINE_DATA_DIR=str(folder / "data"),
            OPENLINEAGE_CONFIG=str(folder / "openlineage.yml"),
            BENCH_INSTANCE_DIR=instance_dir or "",
        )
        command = [sys.executable, __file__, "--worker", kind, str(n), tmp]
        command += ["--profile", profile] if profile else []
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{kind} at N={n} failed:\n{done.stderr[-5000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def revision() -> str:
    """The commit measured, marked `+dirty` when the work tree has changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "orchestration"], capture_output=True, check=False
    )
    commit = head.stdout.decode().strip() or "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def measure_size(n: int, repeat: int, single_max: int, instance_dir: str | None, patched_floor: bool) -> dict:
    """`repeat` rounds of one sample of each kind, interleaved so drift hits every kind alike."""
    kinds = [k for k in KINDS if (k != "single" or n <= single_max) and (k != "patched" or patched_floor)]
    samples: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for r in range(repeat):
        for kind in kinds:
            sample = run_worker(kind, n, instance_dir=instance_dir)
            sample["load_average"] = os.getloadavg()[0]  # other work on the machine skews samples
            samples[kind].append(sample)
            print(
                f"  N={n:<5} {kind:<8} round {r + 1}/{repeat}: {sample['seconds']:8.3f} s  "
                f"{sample['events']:>7} events  (load {sample['load_average']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    median = {k: statistics.median(s["seconds"] for s in v) for k, v in samples.items()}
    median_events = {k: statistics.median(s["events"] for s in v) for k, v in samples.items()}
    events = {k: count / n for k, count in median_events.items()}
    floor = median["raw"] + median["dagster"]
    row = {
        "raw_s": median["raw"],
        "dagster_s": median["dagster"],
        "floor_s": floor,
        "ours_s": median["ours"],
        "ratio": median["ours"] / floor,
        "ours_ms_per_asset": 1000 * median["ours"] / n,
        "floor_ms_per_asset": 1000 * floor / n,
        "ours_events_per_asset": events["ours"],
        "floor_events_per_asset": events["dagster"],
        "extra_events_per_asset": (median_events["ours"] - median_events["dagster"]) / n,
        "events_by_type_per_asset": {
            k: {t: c / n for t, c in sorted(v[-1]["events_by_type"].items())}
            for k, v in samples.items()
            if k != "raw"
        },
        "samples": samples,
    }
    if "patched" in median:
        row.update(
            patched_s=median["patched"], ratio_patched=median["ours"] / (median["raw"] + median["patched"])
        )
    if "single" in median:
        single_floor = median["raw"] + median["single"]
        row.update(
            single_s=median["single"],
            single_floor_s=single_floor,
            ratio_single=median["ours"] / single_floor,
            single_events_per_asset=events["single"],
        )
    return row


def measure_all(
    sizes: list[int], repeat: int, single_max: int, instance_dir: str | None, patched_floor: bool
) -> dict:
    load_before, revision_before = os.getloadavg()[0], revision()
    runs = {n: measure_size(n, repeat, single_max, instance_dir, patched_floor) for n in sizes}
    small, large = runs[sizes[0]], runs[sizes[-1]]
    return {
        "revision": revision_before,
        "revision_after": revision(),  # differs when the code changed during the run
        "repeat": repeat,
        "instance_dir": instance_dir or "temporary folder",
        "load_average": [load_before, os.getloadavg()[0]],  # other work on the machine skews all
        "cpus": os.cpu_count(),
        "single_max": single_max,
        "sizes": runs,
        "growth": large["ours_ms_per_asset"] / small["ours_ms_per_asset"],
        "floor_growth": large["floor_ms_per_asset"] / small["floor_ms_per_asset"],
        "targets": {
            "ratio": TARGET_RATIO,
            "growth": TARGET_GROWTH,
            "extra_events_per_asset": TARGET_EXTRA_EVENTS,
        },
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_tables(results: dict) -> None:
    if results["revision_after"] != results["revision"]:
        print(f"\n**WARNING**: the code changed during the run, to {results['revision_after']}")
    load_before, load_after = results["load_average"]
    sizes = list(results["sizes"])
    print(
        f"\nrevision {results['revision']}, median of {results['repeat']} run(s) each, load average "
        f"{load_before:.2f} before and {load_after:.2f} after on {results['cpus']} CPUs, Dagster instance in "
        f"{results['instance_dir']}\n"
    )
    print(
        "| N | raw | Dagster, multi-assets of 50 | floor | ours | ours / floor | ms/asset ours "
        "| ms/asset floor | single multi-asset | ours / (raw + single) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, r in results["sizes"].items():
        single = f"{r['single_s']:.2f} s | {r['ratio_single']:.3f}" if "single_s" in r else "not run | —"
        print(
            f"| {n:,} | {r['raw_s']:.3f} s | {r['dagster_s']:.2f} s | {r['floor_s']:.2f} s "
            f"| {r['ours_s']:.2f} s | {r['ratio']:.3f} | {r['ours_ms_per_asset']:.2f} "
            f"| {r['floor_ms_per_asset']:.2f} | {single} |"
        )
    skipped = [n for n in sizes if "single_s" not in results["sizes"][n]]
    if skipped:
        print(
            f"\nThe single multi-asset was not run at N = {', '.join(f'{n:,}' for n in skipped)} "
            f"(above --single-max {results['single_max']:,}): Dagster 1.13 looks each output up "
            "among all of a multi-asset's outputs, so one multi-asset of N outputs is quadratic "
            "(5,000 outputs take over 18 minutes)."
        )

    print("\n| N | events/asset ours | events/asset floor | ours − floor | events/asset single |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n, r in results["sizes"].items():
        single = f"{r['single_events_per_asset']:.3f}" if "single_events_per_asset" in r else "—"
        print(
            f"| {n:,} | {r['ours_events_per_asset']:.3f} | {r['floor_events_per_asset']:.3f} "
            f"| {r['extra_events_per_asset']:+.3f} | {single} |"
        )
    if any("patched_s" in r for r in results["sizes"].values()):
        print("\n| N | Dagster with the patches, multi-assets of 50 | ours / (raw + that) |")
        print("| ---: | ---: | ---: |")
        for n, r in results["sizes"].items():
            print(f"| {n:,} | {r['patched_s']:.2f} s | {r['ratio_patched']:.3f} |")

    largest = results["sizes"][sizes[-1]]["events_by_type_per_asset"]
    print(f"\nevents per asset by type at N = {sizes[-1]:,} (ours / floor):")
    for kind in sorted(set(largest["ours"]) | set(largest["dagster"])):
        ours_n, floor_n = largest["ours"].get(kind, 0.0), largest["dagster"].get(kind, 0.0)
        print(f"  {kind:<36} {ours_n:7.3f} {floor_n:7.3f}")

    print("\n| target | measured | limit | result |")
    print("| --- | ---: | ---: | --- |")
    for n, r in results["sizes"].items():
        print(
            f"| ours / floor, N = {n:,} | {r['ratio']:.3f} | ≤ {TARGET_RATIO:.2f} "
            f"| {verdict(r['ratio'] <= TARGET_RATIO)} |"
        )
    if len(sizes) > 1:
        growth = results["growth"]
        print(
            f"| ours ms/asset, N = {sizes[-1]:,} / N = {sizes[0]:,} (floor: "
            f"{results['floor_growth']:.3f}) | {growth:.3f} | ≤ {TARGET_GROWTH:.2f} "
            f"| {verdict(growth <= TARGET_GROWTH)} |"
        )
    for n, r in results["sizes"].items():
        extra = r["extra_events_per_asset"]
        print(
            f"| events/asset, ours − floor, N = {n:,} | {extra:+.3f} | ≤ +{TARGET_EXTRA_EVENTS:.2f} "
            f"| {verdict(extra <= TARGET_EXTRA_EVENTS + 1e-9)} |"  # counts / N: 3 / 30 is not over 0.1
        )


# -- profiling ------------------------------------------------------------------------------------


def excess_profile(ours: str, references: list[str], top: int = 15) -> dict[str, list[dict]]:
    """Functions in the `ours` profile that ran in none of the references: our own overhead."""

    def name(func) -> str:  # without what differs per process: addresses, the temporary folder
        return re.sub(r" at 0x[0-9a-f]+|bench_core_\w+", "", pstats.func_std_string(func))

    seen = {name(func) for path in references for func in pstats.Stats(path).stats}
    rows = [
        {"function": name(func), "calls": nc, "internal_s": tt, "cumulative_s": ct}
        for func, (_, nc, tt, ct, _) in pstats.Stats(ours).stats.items()
        if name(func) not in seen
    ]
    return {
        key: sorted(rows, key=lambda r: r[key], reverse=True)[:top] for key in ("cumulative_s", "internal_s")
    }


def profile_largest(folder: Path, n: int) -> dict[str, list[dict]]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: str(folder / f"{kind}_{n}.prof") for kind in ("raw", "dagster", "ours")}
    for kind, path in paths.items():
        print(f"  profiling {kind} at N={n}", file=sys.stderr, flush=True)
        run_worker(kind, n, path)
    excess = excess_profile(paths["ours"], [paths["raw"], paths["dagster"]])
    for key, rows in excess.items():
        print(f"\nours at N={n}, functions that ran in neither raw nor dagster, by {key}:")
        for r in rows:
            print(
                f"  {r['cumulative_s']:8.3f} cum {r['internal_s']:8.3f} int {r['calls']:>8}x  {r['function']}"
            )
    return excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--single-max",
        type=int,
        default=SINGLE_MAX,
        help="largest N at which the single-multi-asset baseline runs (0: never)",
    )
    parser.add_argument(
        "--patched-floor",
        action="store_true",
        help="also measure the floor's Dagster with the project's fixes of its per-output costs",
    )
    parser.add_argument("--profile", metavar="DIR", help="profile raw, dagster, ours at the largest size")
    parser.add_argument(
        "--instance-dir",
        help="where each run's Dagster instance lives (e.g. /dev/shm on a noisy disk); default: its temporary folder",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        kind, n, workdir = args.worker
        print(json.dumps(worker(kind, int(n), Path(workdir), args.profile)))
        return

    sizes = sorted(set(args.sizes))
    results = measure_all(sizes, args.repeat, args.single_max, args.instance_dir, args.patched_floor)
    print_tables(results)
    if args.profile:
        results["profile"] = profile_largest(Path(args.profile).resolve(), sizes[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
