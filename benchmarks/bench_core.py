"""What `hamilton_assets` costs on top of Hamilton and Dagster themselves.

For a synthetic layered dataflow of N nodes, each timed in a fresh subprocess:

  (a) raw    Hamilton alone: `driver.execute()` of every node;
  (b) bare   Dagster alone: one subsettable multi-asset with the same N specs and edges whose
             body only yields a `MaterializeResult` per asset;
  (c) ours   `hamilton_assets(module, store_root=...)` materialized: (a) + (b) + storing, metadata
             and progress events.

(b) and (c) run with `dg.materialize` (in-process executor) on an on-disk SQLite instance
(`DagsterInstance.local_temp`). Target: c / (a + b) <= 1.25 at every size, and the ratio at the
largest size <= 1.15 x the ratio at the smallest. Also timed: building and resolving the asset
graph of a 5,000-node dataflow against bare specs in multi-assets of 500.

    python benchmarks/bench_core.py [--sizes 200 1000] [--repeat 1] [--json out.json]
                                    [--profile DIR]
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 10  # nodes per layer: depth N / 10 stays far below Hamilton's recursion limit
WARMUP_NODES = 20
DEFS_NODES = 5000
SPECS_PER_ASSET = 500
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # same for (b) and (c)
TARGET_RATIO, TARGET_GROWTH = 1.25, 1.15


# -- the synthetic dataflow -----------------------------------------------------------------------


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


def spec_asset(name: str, functions):
    """A multi-asset of bare specs with the functions' edges; it only reports materializations."""
    import dagster as dg

    specs = [
        dg.AssetSpec(f.__name__, deps=list(inspect.signature(f).parameters)) for f in functions
    ]

    @dg.multi_asset(name=name, specs=specs, can_subset=True)
    def _asset(context):
        selected = context.selected_asset_keys
        for spec in specs:
            if spec.key in selected:
                yield dg.MaterializeResult(asset_key=spec.key)

    return _asset


def functions_of(module):
    return [f for f in vars(module).values() if inspect.isfunction(f)]


# -- measurements: each returns the zero-argument call to time ------------------------------------


def raw(module, instance, workdir):
    from hamilton import driver

    dr = driver.Builder().with_modules(module).build()
    names = [v.name for v in dr.list_available_variables()]
    return lambda: dr.execute(names)


def bare(module, instance, workdir):
    return _materialize(spec_asset(f"bare_{module.__name__}", functions_of(module)), instance)


def ours(module, instance, workdir):
    from orchestration import hamilton_assets

    return _materialize(hamilton_assets(module, store_root=str(workdir / "store")), instance)


def defs_ours(module, instance, workdir):
    import dagster as dg

    from orchestration import hamilton_assets

    return lambda: dg.Definitions(assets=[hamilton_assets(module)]).resolve_asset_graph()


def defs_bare(module, instance, workdir):
    import dagster as dg

    def build():
        fns = functions_of(module)
        parts = [
            spec_asset(f"{module.__name__}_{i}", fns[i : i + SPECS_PER_ASSET])
            for i in range(0, len(fns), SPECS_PER_ASSET)
        ]
        return dg.Definitions(assets=parts).resolve_asset_graph()

    return build


def _materialize(asset, instance):
    import dagster as dg

    def run():
        result = dg.materialize([asset], instance=instance, run_config=QUIET)
        assert result.success

    return run


MEASUREMENTS = {f.__name__: f for f in (raw, bare, ours, defs_ours, defs_bare)}


def worker(kind: str, n: int, workdir: Path, profile: str | None) -> float:
    """Runs in its own process: warms up on a small dataflow, then times the real one once."""
    import dagster as dg

    profiles = _profile_threads() if profile else []
    (workdir / "instance").mkdir()
    instance = dg.DagsterInstance.local_temp(str(workdir / "instance"))
    measure = MEASUREMENTS[kind]
    measure(load_dataflow(workdir, "warmup", WARMUP_NODES), instance, workdir)()
    call = measure(load_dataflow(workdir, "flow", n), instance, workdir)
    if profile:
        profiles.append(cProfile.Profile())
        profiles[-1].enable()
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    if profile:
        profiles[-1].disable()
        pstats.Stats(*profiles).dump_stats(profile)
    return elapsed


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


def run_worker(kind: str, n: int, profile: str | None = None) -> float:
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
        )
        command = [sys.executable, __file__, "--worker", kind, str(n), tmp]
        command += ["--profile", profile] if profile else []
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(f"{kind} at N={n} failed:\n{done.stderr[-5000:]}")
        return float(done.stdout.strip().splitlines()[-1])


def timed(kind: str, n: int, repeat: int) -> list[float]:
    samples = [run_worker(kind, n) for _ in range(repeat)]
    shown = " ".join(f"{s:.3f}" for s in samples)
    print(f"  {kind:<10} N={n:<5} {statistics.median(samples):8.3f} s  ({shown})", file=sys.stderr)
    return samples


def revision() -> str:
    """The commit measured, marked `+dirty` when the work tree has changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "orchestration"], capture_output=True, check=False
    )
    return head.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def excess_profile(ours: str, references: list[str], top: int = 15) -> dict[str, list[dict]]:
    """Functions in the (c) profile that ran in neither (a) nor (b): our own overhead."""

    def name(func) -> str:  # without what differs per process: addresses, the temporary folder
        return re.sub(r" at 0x[0-9a-f]+|bench_core_\w+", "", pstats.func_std_string(func))

    seen = {name(func) for path in references for func in pstats.Stats(path).stats}
    rows = [
        {"function": name(func), "calls": nc, "internal_s": tt, "cumulative_s": ct}
        for func, (_, nc, tt, ct, _) in pstats.Stats(ours).stats.items()
        if name(func) not in seen
    ]
    return {
        key: sorted(rows, key=lambda r: r[key], reverse=True)[:top]
        for key in ("cumulative_s", "internal_s")
    }


def measure_all(sizes: list[int], repeat: int) -> dict:
    load_before, revision_before = os.getloadavg()[0], revision()
    samples = {n: {kind: timed(kind, n, repeat) for kind in ("raw", "bare", "ours")} for n in sizes}
    samples["defs"] = {kind: timed(kind, DEFS_NODES, repeat) for kind in ("defs_ours", "defs_bare")}
    median = {n: {k: statistics.median(v) for k, v in by.items()} for n, by in samples.items()}
    runs = {}
    for n in sizes:
        a, b, c = median[n]["raw"], median[n]["bare"], median[n]["ours"]
        runs[n] = {"raw_s": a, "bare_s": b, "ours_s": c, "ratio": c / (a + b)}
    defs = median["defs"]
    defs_ratio = defs["defs_ours"] / defs["defs_bare"]
    return {
        "revision": revision_before,
        "revision_after": revision(),  # differs when the code changed during the run
        "repeat": repeat,
        "load_average": [load_before, os.getloadavg()[0]],  # other work on the machine skews all
        "sizes": runs,
        "growth": runs[sizes[-1]]["ratio"] / runs[sizes[0]]["ratio"],
        "definitions": {**defs, "nodes": DEFS_NODES, "ratio": defs_ratio},
        "samples_s": samples,
    }


def print_table(results: dict) -> None:
    if results["revision_after"] != results["revision"]:
        print(f"\nWARNING: the code changed during the run, to {results['revision_after']}")
    load_before, load_after = results["load_average"]
    print(
        f"\nrevision {results['revision']}, median of {results['repeat']} run(s) each, "
        f"load average "
        f"{load_before:.2f} before and {load_after:.2f} after on {os.cpu_count()} CPUs"
    )
    print(f"{'N':>6} {'(a) raw s':>10} {'(b) bare s':>11} {'(c) ours s':>11} {'c/(a+b)':>8}")
    for n, r in results["sizes"].items():
        verdict = "ok" if r["ratio"] <= TARGET_RATIO else f"MISSED (target <= {TARGET_RATIO})"
        print(
            f"{n:>6} {r['raw_s']:>10.3f} {r['bare_s']:>11.3f} {r['ours_s']:>11.3f} "
            f"{r['ratio']:>8.3f}  {verdict}"
        )
    sizes = list(results["sizes"])
    if len(sizes) > 1:
        verdict = "ok" if results["growth"] <= TARGET_GROWTH else "MISSED"
        print(
            f"ratio({sizes[-1]}) / ratio({sizes[0]}) = {results['growth']:.3f}  "
            f"{verdict} (target <= {TARGET_GROWTH})"
        )
    d = results["definitions"]
    print(
        f"definitions, {DEFS_NODES} nodes: hamilton_assets {d['defs_ours']:.3f} s, bare specs "
        f"{d['defs_bare']:.3f} s, ratio {d['ratio']:.2f}"
    )


def profile_largest(folder: Path, n: int) -> dict[str, list[dict]]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: str(folder / f"{kind}_{n}.prof") for kind in ("raw", "bare", "ours")}
    for kind, path in paths.items():
        run_worker(kind, n, path)
    excess = excess_profile(paths["ours"], [paths["raw"], paths["bare"]])
    for key, rows in excess.items():
        print(f"\n(c) at N={n}, functions that ran in neither (a) nor (b), by {key}:")
        for r in rows:
            print(
                f"  {r['cumulative_s']:8.3f} cum {r['internal_s']:8.3f} int {r['calls']:>8}x  "
                f"{r['function']}"
            )
    return excess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", metavar="DIR", help="profile (a)-(c) at the largest size")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        kind, n, workdir = args.worker
        print(worker(kind, int(n), Path(workdir), args.profile))
        return

    sizes = sorted(set(args.sizes))
    results = measure_all(sizes, args.repeat)
    print_table(results)
    if args.profile:
        results["profile"] = profile_largest(Path(args.profile).resolve(), sizes[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
