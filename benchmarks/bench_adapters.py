"""What the plain-Hamilton adapters cost a driver, against Hamilton alone and Hamilton's own
OpenLineage adapter, and what a dead lineage backend does to each.

A plain `hamilton.driver` over bench_core.py's generated layered dataflow (N do-nothing int
nodes), built beforehand and executed once to warm up (`OpenLineageAdapter` classifies the graph
then, once per driver); then `driver.execute(all nodes)` is timed, configurations alternating
run by run (order rotated every round), each in its own `PIPELINE_DATA_DIR`:

  bare        no adapter: the baseline;
  hamilton    Hamilton's `h_openlineage.OpenLineageAdapter`, events to a JSON-lines file;
  ours        `OpenLineageAdapter`, events to a JSON-lines file (its default with nothing
              configured): the same transport as `hamilton`, so the adapters' own costs compare;
  ours+http   `OpenLineageAdapter` with a working HTTP backend (in another process): adds
              openlineage-python's HTTP transport sending 2 events per asset, on a thread of ours;
  ours+progress  `OpenLineageAdapter` and `ProgressAdapter` (a no-op callback), file transport.

Before each timed execution of ours*, the spool is delivered (untimed), so no backlog of earlier
executions competes with it; its own events are delivered while it runs, on a thread of its own,
and `until delivered` adds the time to send the rest once it has returned. Delivery costs about
0.25 ms of CPU an event, most of it openlineage-python serializing it (`Serde`), for either
transport.

Targets: `ours` no slower than Hamilton's adapter at every size (ours / hamilton <= 1.0), and its
time per node flat from the smallest to the largest size (<= 1.15x). Ratios to `bare` are reported:
a do-nothing node costs Hamilton about ten microseconds, so any per-node work shows as a large
ratio. `PrometheusAdapter` is left out: like the Dagster path it pushes one request per asset, on
its own thread, which for sub-millisecond nodes costs more than the nodes (docs/plain_hamilton.md).

`--dead` (at 200 nodes) adds the backend that refuses connections and the one that never
answers, for Hamilton's adapter and ours: time of one execution and whether it succeeded.

    python benchmarks/bench_adapters.py [--sizes 200 1000 5000] [--repeat 5] [--json out.json] [--dead]
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
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["HAMILTON_TELEMETRY_ENABLED"] = "false"

from hamilton import driver  # noqa: E402
from hamilton.plugins.h_openlineage import OpenLineageAdapter as HamiltonOpenLineageAdapter  # noqa: E402
from openlineage.client import OpenLineageClient  # noqa: E402
from openlineage.client.transport.file import FileConfig, FileTransport  # noqa: E402
from openlineage.client.transport.http import HttpConfig, HttpTransport  # noqa: E402

from bench_core import load_dataflow  # noqa: E402
from orchestration import OpenLineageAdapter, ProgressAdapter  # noqa: E402
from orchestration.lineage import client as lineage_client  # noqa: E402
from tests.support.http_receiver import LineageReceiver  # noqa: E402

CONFIGS = ("bare", "hamilton", "ours", "ours+http", "ours+progress")
GROWTH_TARGET = 1.15


@contextmanager
def served_backend():
    """A working lineage backend (answers 201) in a process of its own: in this one, its request
    handling would take the driver's GIL and be counted as the adapter's cost."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.support.http_receiver import LineageReceiver\n"
        "receiver = LineageReceiver('ok')\n"
        "print(receiver.url, flush=True)\n"
        "time.sleep(86400)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()


def adapters(config: str, backend_url: str) -> list:
    """The adapters of a configuration; `OPENLINEAGE_URL` is set (or not) by `configure`."""
    if config == "bare":
        return []
    if config == "hamilton":
        if backend_url:
            transport = HttpTransport(HttpConfig(url=backend_url))
        else:
            events_file = Path(os.environ["PIPELINE_DATA_DIR"]) / "hamilton-events.jsonl"
            events_file.parent.mkdir(parents=True, exist_ok=True)
            transport = FileTransport(FileConfig(log_file_path=str(events_file), append=True))
        return [HamiltonOpenLineageAdapter(OpenLineageClient(transport=transport), "bench", "generated")]
    if config == "ours+progress":
        return [OpenLineageAdapter(), ProgressAdapter([lambda *update: None])]
    return [OpenLineageAdapter()]


def configure(config: str, workdir: Path, size: int, backend_url: str) -> None:
    os.environ["PIPELINE_DATA_DIR"] = str(workdir / f"data-{size}-{config}")
    if config == "ours+http":
        os.environ["OPENLINEAGE_URL"] = backend_url
    else:
        os.environ.pop("OPENLINEAGE_URL", None)


def timed(dr, nodes: list[str]) -> float:
    started = time.perf_counter()
    dr.execute(nodes)
    return time.perf_counter() - started


def measure(size: int, repeat: int, workdir: Path, backend_url: str) -> dict:
    module = load_dataflow(workdir, f"g{size}", size)
    nodes = [name for name in vars(module) if name.startswith("g") and callable(getattr(module, name))]
    drivers = {}
    for config in CONFIGS:
        configure(config, workdir, size, backend_url)
        dr = driver.Builder().with_modules(module).with_adapters(*adapters(config, "")).build()
        started = time.perf_counter()
        dr.execute(nodes)  # warm-up; the adapters classify the graph here
        drivers[config] = (dr, time.perf_counter() - started)
    samples: dict[str, list[float]] = {config: [] for config in CONFIGS}
    delivered: dict[str, list[float]] = {config: [] for config in CONFIGS if config.startswith("ours")}
    for round_ in range(repeat):
        order = CONFIGS[round_ % len(CONFIGS) :] + CONFIGS[: round_ % len(CONFIGS)]
        for config in order:
            configure(config, workdir, size, backend_url)
            if config in delivered:  # no backlog of earlier executions competes with this one
                lineage_client.delivery().flush(120)
            samples[config].append(timed(drivers[config][0], nodes))
            if config in delivered:
                started = time.perf_counter()
                lineage_client.delivery().flush(120)
                delivered[config].append(samples[config][-1] + time.perf_counter() - started)
            print(f"  {size} {config}: {samples[config][-1]:.3f} s", file=sys.stderr, flush=True)
    lineage_client.close_deliveries(5.0)
    medians = {config: statistics.median(values) for config, values in samples.items()}
    return {
        "nodes": size,
        "samples": samples,
        "median_s": medians,
        "until_delivered_s": {config: statistics.median(values) for config, values in delivered.items()},
        "first_execution_s": {config: drivers[config][1] for config in CONFIGS},
        "ours_per_node_us": medians["ours"] / size * 1e6,
        "ours_over_hamilton": medians["ours"] / medians["hamilton"],
        "ours_over_bare": medians["ours"] / medians["bare"],
        "http_over_bare": medians["ours+http"] / medians["bare"],
    }


def dead_backends(workdir: Path) -> list[dict]:
    """One execution of the smallest dataflow per adapter and dead backend."""
    module = load_dataflow(workdir, "dead", 200)
    nodes = [name for name in vars(module) if name.startswith("d") and callable(getattr(module, name))]
    rows = []
    for mode in ("refuse", "hang"):
        with LineageReceiver(mode) as backend:
            os.environ["OPENLINEAGE_URL"] = backend.url
            for name in ("hamilton", "ours"):
                os.environ["PIPELINE_DATA_DIR"] = str(workdir / f"dead-{mode}-{name}")
                dr = driver.Builder().with_modules(module).with_adapters(*adapters(name, backend.url)).build()
                started = time.perf_counter()
                try:
                    dr.execute(nodes)
                    outcome = "succeeded"
                except Exception as error:  # Hamilton's adapter raises the transport's error
                    outcome = f"failed: {type(error).__name__}"
                rows.append(
                    {
                        "backend": mode,
                        "adapter": name,
                        "seconds": time.perf_counter() - started,
                        "outcome": outcome,
                    }
                )
                print(
                    f"  dead {mode} {name}: {rows[-1]['seconds']:.2f} s {outcome}",
                    file=sys.stderr,
                    flush=True,
                )
            lineage_client.close_deliveries(0.5)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dead", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, served_backend() as backend:
        workdir = Path(folder)
        results = [measure(size, args.repeat, workdir, backend) for size in args.sizes]
        dead = dead_backends(workdir) if args.dead else []

    print(f"\n### Plain Hamilton driver, median of {args.repeat} alternating executions\n")
    print(
        "| nodes | bare | hamilton | ours | ours+http | ours+progress | ours / hamilton (≤ 1.0) "
        "| ours / bare | ours+http / bare | µs per node, ours |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        m = r["median_s"]
        verdict = "PASS" if r["ours_over_hamilton"] <= 1.0 else "FAIL"
        print(
            f"| {r['nodes']:,} | {m['bare']:.3f} s | {m['hamilton']:.3f} s | {m['ours']:.3f} s "
            f"| {m['ours+http']:.3f} s | {m['ours+progress']:.3f} s | **{r['ours_over_hamilton']:.3f}** {verdict} "
            f"| {r['ours_over_bare']:.1f} | {r['http_over_bare']:.1f} | {r['ours_per_node_us']:.0f} |"
        )
    print("\nUntil delivered (the execution, then the rest of its events' delivery), µs per node:\n")
    print("| nodes | ours (file) | ours+http |")
    print("| ---: | ---: | ---: |")
    for r in results:
        until = r["until_delivered_s"]
        print(
            f"| {r['nodes']:,} | {until['ours'] / r['nodes'] * 1e6:.0f} | {until['ours+http'] / r['nodes'] * 1e6:.0f} |"
        )
    if len(results) > 1:
        growth = results[-1]["ours_per_node_us"] / results[0]["ours_per_node_us"]
        verdict = "PASS" if growth <= GROWTH_TARGET else "FAIL"
        print(
            f"\nPer-node time of `ours`, {results[0]['nodes']:,} → {results[-1]['nodes']:,} nodes: "
            f"{growth:.3f}× (≤ {GROWTH_TARGET}) {verdict}"
        )
    if dead:
        print("\n### A dead backend, one execution of 200 nodes\n")
        print("| backend | adapter | seconds | outcome |")
        print("| --- | --- | ---: | --- |")
        for row in dead:
            print(f"| {row['backend']} | {row['adapter']} | {row['seconds']:.2f} | {row['outcome']} |")
    if args.json:
        args.json.write_text(json.dumps({"sizes": results, "dead": dead}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
