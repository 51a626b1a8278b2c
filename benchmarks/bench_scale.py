"""Large dataflows: definitions load time, the UI's asset graph, and peak memory.

1. Definitions load (each figure in a fresh process, after a warm-up): building and resolving the
   asset graph of generated dataflows of 1,000, 5,000 and 10,000 nodes with `hamilton_assets`,
   against Dagster's own cost for the same number of bare `AssetSpec`s with the same edges, in
   multi-assets of 500. Targets: ours / reference <= 2 at every size, growing linearly
   (seconds per 1,000 nodes at the largest size <= 1.25 x at the smallest). Ours is timed twice,
   in two fresh processes sharing a data directory: the first load of a file computes Hamilton's
   code versions and caches them; every later process (daemon, run workers, reloads) reads them.
2. `dagster dev` on the 5,000-node dataflow: seconds until the webserver answers the asset graph
   query (every asset node with its dependencies) the UI's graph page makes, and the nodes it
   returned.
3. Peak memory (max RSS of a fresh process): materializing a 1,000-node dataflow of
   100,000-row DataFrames with `hamilton_assets` against running the same nodes with plain
   Hamilton. Target: <= 1.5x.

    python benchmarks/bench_scale.py [--sizes 1000 5000 10000] [--repeat 1] [--json out.json]
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

WIDTH = 20  # 10,000 nodes in 500 layers: within Hamilton's recursion limit
MEMORY_NODES, MEMORY_ROWS, MEMORY_WIDTH = 1000, 100_000, 50
UI_NODES = 5000
TARGET_DEFS, TARGET_LINEAR, TARGET_MEMORY = 2.0, 1.25, 1.5


# -- workers (each in a fresh process) ------------------------------------------------------------


def frames_source(n: int) -> str:
    """Layers of MEMORY_WIDTH nodes, each a 100,000-row DataFrame derived from one of the layer before."""
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


def memory_worker(kind: str, workdir: Path) -> float:
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB


def defs_worker(kind: str, n: int, workdir: Path) -> float:
    import dagster as dg

    instance = None
    measure = bench_core.MEASUREMENTS[kind]
    measure(bench_core.load_dataflow(workdir, "warmup", 20, WIDTH), instance, workdir)()
    call = measure(bench_core.load_dataflow(workdir, "flow", n, WIDTH), instance, workdir)
    start = time.perf_counter()
    call()
    del dg
    return time.perf_counter() - start


def in_fresh_process(*args: str, times: int = 1) -> list[float]:
    """`times` fresh processes in turn, sharing one data directory (so later ones find the
    code-version cache the first one wrote, as every process after a code location's first does)."""
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        env = {**os.environ, "HAMILTON_TELEMETRY_ENABLED": "false", "OPENLINEAGE_DISABLED": "true",
               "DAGSTER_HOME": tmp, "PIPELINE_DATA_DIR": str(Path(tmp, "data"))}
        results = []
        for i in range(times):
            workdir = Path(tmp, f"work{i}")
            workdir.mkdir()
            done = subprocess.run([sys.executable, __file__, "--worker", *args, str(workdir)], env=env,
                                  cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"worker {args} failed:\n{done.stderr[-5000:]}")
            results.append(float(done.stdout.strip().splitlines()[-1]))
        return results


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
        env = {**os.environ, "DAGSTER_HOME": tmp, "PIPELINE_DATA_DIR": str(folder / "data"),
               "HAMILTON_TELEMETRY_ENABLED": "false",
               "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)])}
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "big_defs", "-h", "127.0.0.1",
             "-p", str(port)],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        query = json.dumps({"query": "{ assetNodes { assetKey { path } dependencyKeys { path } } }"}).encode()
        try:
            while True:
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                                     headers={"Content-Type": "application/json"})
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
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query,
                    headers={"Content-Type": "application/json"}), timeout=120) as response:
                again = len(json.load(response)["data"]["assetNodes"])
            query_s = time.perf_counter() - t0
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        return {"nodes": len(nodes), "nodes_again": again, "first_answer_s": round(ready, 2),
                "asset_graph_query_s": round(query_s, 2)}


# -- driver ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument("--skip", nargs="*", default=[], choices=["defs", "ui", "memory"])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        if args.worker[0] == "memory":
            print(memory_worker(args.worker[1], Path(args.worker[2])))
        else:
            print(defs_worker(args.worker[1], int(args.worker[2]), Path(args.worker[3])))
        return

    results: dict = {"revision": bench_core.revision(), "load_average_before": os.getloadavg()[0]}
    if "defs" not in args.skip:
        defs = {}
        for n in sorted(args.sizes):
            cold, warm, bare = [], [], []
            for _ in range(args.repeat):
                first, second = in_fresh_process("defs", "defs_ours", str(n), times=2)
                cold.append(first)
                warm.append(second)
                bare += in_fresh_process("defs", "defs_bare", str(n))
            cold, warm, bare = (statistics.median(x) for x in (cold, warm, bare))
            defs[n] = {"ours_cold_s": round(cold, 3), "ours_s": round(warm, 3), "reference_s": round(bare, 3),
                       "ratio_cold": round(cold / bare, 3), "ratio": round(warm / bare, 3),
                       "ours_s_per_1000": round(warm / n * 1000, 3)}
            print(f"definitions N={n}: ours {warm:.3f} s (first load {cold:.3f} s), reference {bare:.3f} s, "
                  f"ratio {warm / bare:.2f} (first load {cold / bare:.2f})", file=sys.stderr)
        sizes = sorted(defs)
        results["definitions"] = defs
        results["definitions_linearity"] = round(
            defs[sizes[-1]]["ours_s_per_1000"] / defs[sizes[0]]["ours_s_per_1000"], 3)
    if "ui" not in args.skip:
        results["ui"] = ui_asset_graph(UI_NODES)
        print(f"dagster dev, {UI_NODES} nodes: {results['ui']}", file=sys.stderr)
    if "memory" not in args.skip:
        [hamilton] = in_fresh_process("memory", "hamilton")
        [ours] = in_fresh_process("memory", "ours")
        results["memory"] = {"nodes": MEMORY_NODES, "rows": MEMORY_ROWS, "hamilton_mib": round(hamilton),
                             "ours_mib": round(ours), "ratio": round(ours / hamilton, 3)}
        print(f"peak memory: {results['memory']}", file=sys.stderr)
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
