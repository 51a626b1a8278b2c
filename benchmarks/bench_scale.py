"""Large dataflows: definitions load time, the UI's asset graph, and peak memory.

1. Definitions load of generated layered dataflows (200, 1,000 and 5,000 nodes by default), each
   figure timed in a fresh process after a warm-up on a 20-node dataflow:
     bare      Dagster's own cost: bare `AssetSpec`s with the same edges in multi-assets of 500,
               built, then `Definitions(...).resolve_asset_graph()`;
     graph     Hamilton's own graph build, `driver.Builder().with_modules(module).build()`;
     versions  Hamilton's node versions, `HamiltonNode.version` of every node (a parse and an
               unparse of each function's source);
     first     `Definitions(assets=[hamilton_assets(module)]).resolve_asset_graph()` with an empty
               code-version cache (a code location's first load of a file);
     later     the same in a second fresh process sharing the first's data directory, which finds
               the code versions cached (the daemon, each run's worker, reloads);
     plain_yaml  `later`, but built by a minimal YAML component of Dagster's (`plain_component.py`, one
               attribute: the module) in a defs folder loaded as `dg` loads it: Dagster's own cost
               of a YAML component, which rewrites every asset's metadata to point at its defs.yaml;
     yaml      the same dataflow declared as a `HamiltonComponent` in a defs.yaml;
     translated  `yaml` with a per-node `translation` (key prefix, owners, a templated tag and
               description), rendered for every node.
   Targets: first / (bare + graph + versions) <= 1.1, later / (bare + graph) <= 1.3,
   yaml / plain_yaml <= 1.1 (our component adds next to nothing); translated / plain_yaml is
   reported. These two are medians of the ratios within each round (the pair ran seconds apart).
2. `dagster dev` on the 5,000-node dataflow: seconds until the webserver answers the asset graph
   query (every asset node with its dependencies) the UI's graph page makes, and the nodes it
   returned.
3. Peak memory (max RSS of a fresh process, or of its largest child): materializing a 5,000-node
   dataflow of single-column 100,000-row DataFrames with `hamilton_assets` against running the
   same nodes with plain Hamilton. Target: <= 1.5x.

    python benchmarks/bench_scale.py [--sizes 200 1000 5000] [--repeat 3] [--json out.json]
                                     [--skip defs ui memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_core  # noqa: E402

WIDTH = 20  # nodes per layer: 5,000 nodes are 250 layers, within Hamilton's recursion limit
WARMUP_NODES = 20
SPECS_PER_ASSET = 500
MEMORY_NODES, MEMORY_ROWS, MEMORY_WIDTH = 5000, 100_000, 50
UI_NODES = 5000
TARGET_FIRST, TARGET_LATER, TARGET_MEMORY, TARGET_YAML = 1.1, 1.3, 1.5, 1.1
REFERENCES = ("bare", "graph", "versions")
COMPONENT = ("plain_yaml", "yaml", "translated")


# -- definitions load: each returns the zero-argument call to time, which returns what it built ---


def bare(module):
    import dagster as dg

    def load():
        functions = bench_core.functions_of(module)
        parts = [
            bench_core.spec_asset(f"{module.__name__}_{i}", functions[i : i + SPECS_PER_ASSET])
            for i in range(0, len(functions), SPECS_PER_ASSET)
        ]
        return dg.Definitions(assets=parts).resolve_asset_graph()

    return load


def graph(module):
    from hamilton import driver

    return lambda: driver.Builder().with_modules(module).build()


def versions(module):
    from hamilton import driver

    nodes = driver.Builder().with_modules(module).build().list_available_variables()
    return lambda: [node.version for node in nodes]


def ours(module):
    import dagster as dg

    from orchestration import hamilton_assets

    return lambda: dg.Definitions(assets=[hamilton_assets(module)]).resolve_asset_graph()


TRANSLATION = """
  translation:
    key_prefix: "{{ node.module }}"
    owners: ["team:analytics"]
    tags: {layer: "{{ node.name[:2] }}"}
    description: "{{ node.name }} returns {{ node.return_type }}"
"""


def in_defs_folder(files: dict[str, str]):
    """Loads a defs folder holding `files` as `dg` does, down to the asset graph."""
    import dagster as dg
    from dagster.components.testing import create_defs_folder_sandbox

    def load():
        with create_defs_folder_sandbox() as sandbox:
            for name, text in files.items():
                (sandbox.defs_folder_path / name).parent.mkdir(parents=True, exist_ok=True)
                (sandbox.defs_folder_path / name).write_text(text)
            with sandbox.build_all_defs() as defs:
                assert isinstance(defs, dg.Definitions)
                return defs.resolve_asset_graph()

    return load


def plain_yaml(module):
    return in_defs_folder(
        {
            "flow/defs.yaml": f"type: plain_component.PlainComponent\nattributes:\n  module: {module.__name__}\n"
        }
    )


def yaml(module, translation: str = ""):
    component = f"type: orchestration.HamiltonComponent\nattributes:\n  modules: [{module.__name__}]\n"
    return in_defs_folder({"flow/defs.yaml": component + translation})


def translated(module):
    return yaml(module, TRANSLATION)


DEFS_MEASUREMENTS = {f.__name__: f for f in (bare, graph, versions, ours, plain_yaml, yaml, translated)}


def defs_worker(kind: str, n: int, workdir: Path) -> dict:
    measure = DEFS_MEASUREMENTS[kind]
    measure(bench_core.load_dataflow(workdir, "warmup", WARMUP_NODES, WIDTH))()
    call = measure(bench_core.load_dataflow(workdir, "flow", n, WIDTH))
    start, start_cpu = time.perf_counter(), time.process_time()
    built = call()  # freed after the clocks stop, as a code location keeps it
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    del built
    return {"seconds": seconds, "cpu_seconds": cpu_seconds}


# -- peak memory ----------------------------------------------------------------------------------


def frames_source(n: int) -> str:
    """Layers of MEMORY_WIDTH nodes, each a single-column DataFrame of MEMORY_ROWS rows derived from
    one of the layer before (5,000 of them are ~4 GB, all kept by plain Hamilton's results)."""
    lines = ["import numpy as np", "import pandas as pd", ""]
    for i in range(n):
        layer = i // MEMORY_WIDTH
        if layer == 0:
            lines.append(
                f"def f{i}() -> pd.DataFrame:\n"
                f"    return pd.DataFrame({{'v': np.arange({MEMORY_ROWS}, dtype='int64') + {i}}})\n"
            )
        else:
            parent = (layer - 1) * MEMORY_WIDTH + (i * 7) % MEMORY_WIDTH
            lines.append(f"def f{i}(f{parent}: pd.DataFrame) -> pd.DataFrame:\n    return f{parent} + 1\n")
    return "\n".join(lines)


def memory_worker(kind: str, workdir: Path) -> dict:
    import importlib.util

    path = workdir / "frames.py"
    path.write_text(frames_source(MEMORY_NODES))
    spec = importlib.util.spec_from_file_location("frames", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["frames"] = module
    spec.loader.exec_module(module)
    if kind == "hamilton":
        from hamilton import driver

        dr = driver.Builder().with_modules(module).build()
        dr.execute([v.name for v in dr.list_available_variables()])
    else:
        import dagster as dg

        from orchestration import hamilton_assets

        (workdir / "instance").mkdir()
        instance = dg.DagsterInstance.local_temp(str(workdir / "instance"))
        assets = hamilton_assets(module, store_root=str(workdir / "store"))
        assert dg.materialize([assets], instance=instance, run_config=bench_core.QUIET).success
    # A step run in a child process counts too: the larger of the two peaks is the step's.
    peaks_kib = [
        resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    ]
    return {"mib": max(peaks_kib) / 1024}


def in_fresh_process(*args: str, times: int = 1) -> list[dict]:
    """`times` fresh processes in turn, sharing one data directory (so later ones find the
    code-version cache the first one wrote, as every process after a code location's first does)."""
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        env = {
            **os.environ,
            "HAMILTON_TELEMETRY_ENABLED": "false",
            "OPENLINEAGE_DISABLED": "true",
            "DAGSTER_HOME": tmp,
            "PIPELINE_DATA_DIR": str(Path(tmp, "data")),
        }
        results = []
        for i in range(times):
            workdir = Path(tmp, f"work{i}")
            workdir.mkdir()
            done = subprocess.run(
                [sys.executable, __file__, "--worker", *args, str(workdir)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.exit(f"worker {args} failed:\n{done.stderr[-5000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        return results


def measure_defs(n: int, repeat: int) -> dict:
    """`repeat` rounds of one sample of each kind, interleaved so drift hits every kind alike."""
    samples: dict[str, list[dict]] = {kind: [] for kind in (*REFERENCES, "first", "later", *COMPONENT)}
    for r in range(repeat):
        for kind in REFERENCES:
            [sample] = in_fresh_process("defs", kind, str(n))
            samples[kind].append(sample)
        first, later = in_fresh_process("defs", "ours", str(n), times=2)
        samples["first"].append(first)
        samples["later"].append(later)
        for kind in COMPONENT:  # the second process, as `later`: the code versions are cached
            samples[kind].append(in_fresh_process("defs", kind, str(n), times=2)[1])
        shown = "  ".join(f"{kind} {s[-1]['seconds']:.3f}" for kind, s in samples.items())
        print(f"  N={n:<5} round {r + 1}/{repeat}: {shown} s", file=sys.stderr, flush=True)
    row: dict = {"samples": samples}
    for clock, suffix in (("seconds", ""), ("cpu_seconds", "_cpu")):
        m = {kind: statistics.median(s[clock] for s in v) for kind, v in samples.items()}
        row.update({f"{kind}{suffix}_s": round(value, 4) for kind, value in m.items()})
        row[f"ratio_first{suffix}"] = round(m["first"] / (m["bare"] + m["graph"] + m["versions"]), 3)
        row[f"ratio_later{suffix}"] = round(m["later"] / (m["bare"] + m["graph"]), 3)
        for kind in ("yaml", "translated"):  # against Dagster's own YAML component of the same assets,
            # paired within each round: the two ran seconds apart, so a slower machine slows both
            paired = [a[clock] / b[clock] for a, b in zip(samples[kind], samples["plain_yaml"])]
            row[f"ratio_{kind}{suffix}"] = round(statistics.median(paired), 3)
    return row


def print_defs_table(defs: dict, repeat: int) -> None:
    lines = [
        f"\ndefinitions load, wall-clock seconds, median of {repeat} fresh process(es) each:",
        f"{'nodes':>6} {'bare':>7} {'graph':>7} {'versions':>9} {'first':>7} {'later':>7} "
        f"{'first/(b+g+v)':>14} {'later/(b+g)':>12} {'plain':>7} {'yaml':>7} {'transl.':>7} "
        f"{'yaml/plain':>12} {'transl./plain':>15}",
    ]
    for n, r in defs.items():
        met = (
            r["ratio_first"] <= TARGET_FIRST
            and r["ratio_later"] <= TARGET_LATER
            and r["ratio_yaml"] <= TARGET_YAML
        )
        lines.append(
            f"{n:>6} {r['bare_s']:>7.3f} {r['graph_s']:>7.3f} {r['versions_s']:>9.3f} {r['first_s']:>7.3f} "
            f"{r['later_s']:>7.3f} {r['ratio_first']:>14.3f} {r['ratio_later']:>12.3f} {r['plain_yaml_s']:>7.3f} "
            f"{r['yaml_s']:>7.3f} {r['translated_s']:>7.3f} {r['ratio_yaml']:>12.3f} {r['ratio_translated']:>15.3f}  "
            f"{'ok' if met else 'MISSED'}"
        )
    lines.append(
        f"targets: first/(b+g+v) <= {TARGET_FIRST}, later/(b+g) <= {TARGET_LATER}, yaml/plain <= {TARGET_YAML}"
    )
    print("\n".join(lines), file=sys.stderr)


# -- the UI ---------------------------------------------------------------------------------------


def ui_asset_graph(n: int) -> dict:
    """Starts `dagster dev` on an n-node dataflow and times the asset graph query."""
    with tempfile.TemporaryDirectory(prefix="bench_scale_ui_") as tmp:
        folder = Path(tmp)
        (folder / "big_flow.py").write_text(bench_core.dataflow_source(n, prefix="b", width=WIDTH))
        (folder / "big_defs.py").write_text(
            "import dagster as dg\nimport big_flow\nfrom orchestration import hamilton_assets\n"
            "defs = dg.Definitions(assets=[hamilton_assets(big_flow)])\n"
        )
        (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "DAGSTER_HOME": tmp,
            "PIPELINE_DATA_DIR": str(folder / "data"),
            "HAMILTON_TELEMETRY_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)]),
        }
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "dev",
                "-m",
                "big_defs",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        query = json.dumps({"query": "{ assetNodes { assetKey { path } dependencyKeys { path } } }"}).encode()
        try:
            while True:
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/graphql",
                        data=query,
                        headers={"Content-Type": "application/json"},
                    )
                    with urllib.request.urlopen(request, timeout=120) as response:
                        nodes = json.load(response)["data"]["assetNodes"]
                    if nodes:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.perf_counter() - started > 600:
                    sys.exit("dagster dev did not serve the asset graph")
                time.sleep(0.5)
            ready = time.perf_counter() - started
            t0 = time.perf_counter()
            with urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=query,
                    headers={"Content-Type": "application/json"},
                ),
                timeout=120,
            ) as response:
                again = len(json.load(response)["data"]["assetNodes"])
            query_s = time.perf_counter() - t0
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        return {
            "nodes": len(nodes),
            "nodes_again": again,
            "first_answer_s": round(ready, 2),
            "asset_graph_query_s": round(query_s, 2),
        }


# -- driver ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the definitions figures (median)")
    parser.add_argument("--json")
    parser.add_argument("--skip", nargs="*", default=[], choices=["defs", "ui", "memory"])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        if args.worker[0] == "memory":
            print(json.dumps(memory_worker(args.worker[1], Path(args.worker[2]))))
        else:
            print(json.dumps(defs_worker(args.worker[1], int(args.worker[2]), Path(args.worker[3]))))
        return

    results: dict = {"revision": bench_core.revision(), "load_average_before": os.getloadavg()[0]}
    if "defs" not in args.skip:
        results["definitions"] = {n: measure_defs(n, args.repeat) for n in sorted(set(args.sizes))}
        print_defs_table(results["definitions"], args.repeat)
    if "ui" not in args.skip:
        results["ui"] = ui_asset_graph(UI_NODES)
        print(f"dagster dev, {UI_NODES} nodes: {results['ui']}", file=sys.stderr)
    if "memory" not in args.skip:
        [hamilton] = in_fresh_process("memory", "hamilton")
        [ours_peak] = in_fresh_process("memory", "ours")
        results["memory"] = {
            "nodes": MEMORY_NODES,
            "rows": MEMORY_ROWS,
            "hamilton_mib": round(hamilton["mib"]),
            "ours_mib": round(ours_peak["mib"]),
            "ratio": round(ours_peak["mib"] / hamilton["mib"], 3),
        }
        met = results["memory"]["ratio"] <= TARGET_MEMORY
        print(
            f"peak memory: {results['memory']}  {'ok' if met else 'MISSED'} (target <= {TARGET_MEMORY})",
            file=sys.stderr,
        )
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
