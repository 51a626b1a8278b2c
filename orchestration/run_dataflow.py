"""Runs a Hamilton dataflow without Dagster, with a progress bar over the assets it computes.

    python -m orchestration.run_dataflow hamilton_pipelines.sales_analytics \\
        --config sales_scope=all --input landing_dir=data/landing --output business_metrics

The dataflow is the one `hamilton_assets` builds; every requested output (default: all its assets)
and what it needs is computed in this process, nothing is loaded or stored, and no Dagster instance
is involved. A short summary of each output goes to stdout; the bar goes to stderr when it is a
terminal (`PIPELINE_PROGRESS_BAR=1`/`0` forces it on/off). Bad names exit with status 2.

Lineage is on, as in Dagster: `OpenLineageAdapter` sends the execution and each asset to the
configured backend (default: `$PIPELINE_DATA_DIR/lineage/events.jsonl`); `--no-lineage` turns it
off. With `PROMETHEUS_PUSHGATEWAY_URL` set, `PrometheusAdapter` pushes the metrics too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from orchestration.adapters.openlineage import OpenLineageAdapter
from orchestration.adapters.prometheus import PrometheusAdapter
from orchestration.dataflow import Dataflow, InputNode
from orchestration.execution.hamilton_stream import NodeResult, ResultStream
from orchestration.monitoring.terminal import AssetBar
from orchestration.runtime import progress_bar_from_env

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        modules = [_import(name) for name in args.modules]
        stream = ResultStream()
        reporters = [PrometheusAdapter()] + ([] if args.no_lineage else [OpenLineageAdapter()])
        dataflow = Dataflow(modules, dict(args.config), adapters=[stream, *reporters])
        for reporter in reporters:
            reporter.classify_as(dataflow)
        outputs = _outputs(dataflow, args.output)
        needed = dataflow.needed_by(outputs)
        inputs = _inputs(dataflow, needed, dict(args.input))
    except ValueError as error:  # DataflowError included
        parser.error(str(error))  # exits with status 2

    assets = [name for name in dataflow.order if name in needed and name in dataflow.assets]
    started = time.perf_counter()
    values = _execute(dataflow, stream, outputs, inputs, assets)
    seconds = time.perf_counter() - started
    print(f"{dataflow.name}: {len(assets)} asset{'s' * (len(assets) != 1)} computed in {seconds:.2f} s")
    width = max(len(name) for name in outputs)
    for name in outputs:
        print(f"  {name:<{width}}  {_describe(values[name])}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.run_dataflow",
        description="Run a Hamilton dataflow without Dagster and summarise its outputs.",
    )
    parser.add_argument(
        "modules", nargs="+", metavar="MODULE", help="Hamilton module(s), e.g. hamilton_pipelines.ml_pipeline"
    )
    parser.add_argument(
        "--config",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hamilton config (a string), e.g. sales_scope=all; repeatable",
    )
    parser.add_argument(
        "--input",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dataflow input, converted to its declared type; repeatable",
    )
    parser.add_argument(
        "--output",
        type=_names,
        action="extend",
        default=[],
        metavar="NAME[,NAME...]",
        help="what to compute (default: every asset); repeatable",
    )
    parser.add_argument(
        "--no-lineage",
        action="store_true",
        help="emit no OpenLineage events (default: to the configured backend, as Dagster runs do)",
    )
    return parser


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:  # any import failure is reported as the module's, without traceback
        raise ValueError(
            f"cannot import module {name!r} ({type(error).__name__}: {error}). Fix: give the dotted "
            "name of a Hamilton module importable from here, e.g. hamilton_pipelines.sales_analytics, "
            "and run from the project root."
        ) from error


def _outputs(dataflow: Dataflow, requested: Sequence[str]) -> list[str]:
    nodes = dataflow.nodes
    unknown = [name for name in requested if name not in nodes or nodes[name].is_external_input]
    if unknown:
        raise ValueError(
            f"unknown output {', '.join(map(repr, unknown))} in {dataflow.name}. Fix: use one of its "
            f"assets: {', '.join(dataflow.assets)} (or a column of one)."
        )
    return list(dict.fromkeys(requested)) or list(dataflow.assets)


def _inputs(dataflow: Dataflow, needed: set[str], given: Mapping[str, str]) -> dict[str, Any]:
    unknown = [name for name in given if name not in dataflow.inputs]
    if unknown:
        raise ValueError(
            f"unknown input {', '.join(map(repr, unknown))}. Fix: use one of {dataflow.name}'s "
            f"inputs: {', '.join(dataflow.inputs) or 'it has none'}."
        )
    inputs = {}
    missing = []
    for name, node in dataflow.inputs.items():
        if name in given:
            inputs[name] = _convert(node, given[name])
        elif node.has_default:
            inputs[name] = node.default
        elif name in needed:
            missing.append(f"{name} ({_type_name(node.type)}, read by {', '.join(node.consumers)})")
    if missing:
        raise ValueError(
            f"missing input {'; '.join(missing)}. Fix: pass --input NAME=VALUE, or --config that "
            "selects a function computing it (e.g. a @config.when option)."
        )
    return {name: value for name, value in inputs.items() if name in needed}


def _convert(node: InputNode, text: str) -> Any:
    """`text` as the input's declared type: str, int, float, bool (or Optional of one); JSON else."""
    tp = node.type
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if tp is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
    else:
        try:
            return tp(text) if tp in (str, int, float) else json.loads(text)
        except ValueError:
            pass
    raise ValueError(
        f"--input {node.name}={text}: {node.name} takes {_type_name(node.type)} values, not {text!r}."
    )


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _execute(
    dataflow: Dataflow,
    stream: ResultStream,
    outputs: list[str],
    inputs: dict[str, Any],
    assets: list[str],
) -> dict[str, Any]:
    bar_setting = progress_bar_from_env()
    show_bar = sys.stderr.isatty() if bar_setting is None else bar_setting
    bar = AssetBar(len(assets), dataflow.name) if show_bar else None
    wanted = set(assets)

    def finished(result: NodeResult) -> None:
        if bar is not None and (asset := dataflow.asset_of(result.node_name)) in wanted:
            bar.ended(asset, done=result.error is None)

    def starting(node_name: str) -> None:
        if bar is not None and (asset := dataflow.asset_of(node_name)) in wanted:
            bar.running(asset)

    success = False
    try:
        with stream.listen(wanted, finished, threading.Event(), starting):
            values = dataflow.driver.execute(outputs, inputs=inputs)
        success = True
        return values
    finally:
        if bar is not None:
            bar.close("done" if success else "failed")


def _describe(value: Any) -> str:
    """What a value is, in a few words: its type and size."""
    kind = type(value).__name__
    if isinstance(value, pd.DataFrame):
        return f"{kind}, {len(value):,} rows × {len(value.columns)} columns"
    if isinstance(value, pd.Series):
        return f"{kind}, {len(value):,} rows ({value.dtype})"
    if isinstance(value, np.ndarray):
        return f"{kind}, shape {value.shape} ({value.dtype})"
    if isinstance(value, str):
        return f"{kind}, {len(value):,} characters"
    if isinstance(value, Mapping):
        return f"{kind}, {len(value)} keys"
    if isinstance(value, (list, tuple, set)):
        return f"{kind}, {len(value)} items"
    if isinstance(value, (bool, int, float, np.number)):
        return f"{kind} {value}"
    return kind


if __name__ == "__main__":
    sys.exit(main())
