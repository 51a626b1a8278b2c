"""Prometheus metrics of Hamilton steps, pushed to a Pushgateway because runs are batch jobs.

Set `PROMETHEUS_PUSHGATEWAY_URL` or the runtime's `pushgateway_url` (`orchestration.runtime`;
read when a step starts; `http://user:password@host:9091` for basic auth) to push; unset, the
observer does nothing. The `pipeline` label is the step's name:
the dataflow, or `<dataflow>__<group>` for `hamilton_assets_by_group`, whose steps run at once.

Grouping: a Pushgateway replaces a whole group on PUT and a group's same-name metrics on POST, so
each asset gets its own group `{job="hamilton_<pipeline>", asset="<key>"}`, pushed with POST: a
run that computes some assets never touches the series of the others. Progress lives in the
pipeline's group `{job="hamilton_<pipeline>"}`, pushed whole (PUT), so each run replaces the
previous run's series: the gateway keeps one progress series per pipeline, not one per run
forever, and Prometheus keeps the history (concurrent runs of one pipeline take turns on it).
The same group holds `hamilton_node_running_since_seconds{asset=...}`: the start time of each node
that has run past `ProgressSettings.live_after_s`, gone once it ends, so labels stay bounded.

Counters and histograms must keep growing across runs although every run starts from zero, so a
step first reads what the Pushgateway holds for its assets and adds to that. A new asset's error
counter and duration histogram are pushed at zero when the step starts, so Prometheus can see its
first failure or run as an increase. Two concurrent runs computing the same asset can lose one's
increments; a Pushgateway restarted without persistence looks like a counter reset, which
Prometheus handles.

Pushing happens in a background thread: at most one push per second as assets finish and a final
one at step end, which the step waits for at most `STEP_END_WAIT_S` (a step's process may exit
right after). The first failed request ends pushing for the step and logs one warning in the run
log; a dead or hung gateway never fails a run and delays it by at most `STEP_END_WAIT_S`.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote
from urllib.request import Request, urlopen

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import (
    basic_auth_handler,
    default_handler,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from orchestration.observers import Materialized, StepInfo, StepObserver
from orchestration.values import row_count

PUSHGATEWAY_URL = "PROMETHEUS_PUSHGATEWAY_URL"
STEP_DURATION = "hamilton_step_duration_seconds"
RECORDS_PROCESSED = "hamilton_records_processed"
PIPELINE_PROGRESS = "hamilton_pipeline_progress_percent"
STEP_ERRORS = "hamilton_step_errors_total"
NODE_RUNNING = "hamilton_node_running_since_seconds"
METRICS = (STEP_DURATION, RECORDS_PROCESSED, PIPELINE_PROGRESS, STEP_ERRORS, NODE_RUNNING)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, math.inf)
PUSH_TIMEOUT_S = 2.0
MIN_PUSH_INTERVAL_S = 1.0
STEP_END_WAIT_S = 3.0
_ASSET_LABELS = ["pipeline", "asset"]
_PIPELINE_GROUP = None  # the group key of progress, next to one group per asset


class Pushgateway:
    """A Pushgateway's URL; credentials in it are used for basic auth and never shown."""

    def __init__(self, url: str):
        # User info is split off the raw text: urlsplit would end it at a '#', '?' or '/' in the
        # password and leave the password in what is shown.
        scheme, _, rest = url.partition("://") if "://" in url else ("http", "", url)
        userinfo, at, host = rest.rpartition("@")
        self.url = f"{scheme}://{host if at else rest}".rstrip("/")
        user, _, password = userinfo.partition(":")
        self._auth = (unquote(user), unquote(password)) if at else None

    def read(self) -> str:
        """Everything the gateway holds, in the text exposition format."""
        request = Request(f"{self.url}/metrics")
        if self._auth:
            token = base64.b64encode(":".join(self._auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urlopen(request, timeout=PUSH_TIMEOUT_S) as response:
            return response.read().decode("utf-8")

    def push(
        self, job: str, grouping_key: dict[str, str], registry: CollectorRegistry, whole: bool = False
    ) -> None:
        """POST: replaces only the group's metrics of the same names; `whole`: PUT, the whole group."""
        push = push_to_gateway if whole else pushadd_to_gateway
        push(self.url, job, registry, grouping_key, PUSH_TIMEOUT_S, self._handler)

    def _handler(self, url, method, timeout, headers, data):
        if self._auth:
            return basic_auth_handler(url, method, timeout, headers, data, *self._auth)
        return default_handler(url, method, timeout, headers, data)


@dataclass
class _Totals:
    """An asset's cumulative values: what the gateway held plus what this step adds."""

    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    duration_sum: float = 0.0


class StepMetrics:
    """One step's (or plain Hamilton execution's) metrics, and the thread that pushes them."""

    def __init__(self, gateway: Pushgateway, pipeline: str, run_id: str, assets: Iterable[str], total: int):
        self.gateway = gateway
        self.pipeline = pipeline
        self.job = f"hamilton_{pipeline}"
        self.run_id = run_id
        self.total = total
        self.finished = 0
        self.error: str | None = None
        self.reported = False
        self._assets = list(assets)
        self._baseline: dict[str, _Totals] = {}
        self._errors = dict.fromkeys(self._assets, 0)
        self._durations: dict[str, list[float]] = {asset: [] for asset in self._assets}
        self._records: dict[str, int] = {}
        self._running: dict[str, float] = {}  # asset -> when its node started (unix time)
        self._dirty: set[str | None] = {_PIPELINE_GROUP}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ending = threading.Event()
        self._stopped = threading.Event()
        self._wake.set()
        threading.Thread(target=self._run, name=f"metrics-{pipeline}", daemon=True).start()

    def running(self, asset: str, since: float) -> None:
        with self._lock:
            if asset in self._running:
                return
            self._running[asset] = since
            self._dirty.add(_PIPELINE_GROUP)
        self._wake.set()

    def materialized(self, asset: str, duration_s: float, rows: int | None) -> None:
        with self._lock:
            self._running.pop(asset, None)
            self.finished += 1
            self._durations[asset].append(duration_s)
            if rows is not None:
                self._records[asset] = rows
            self._dirty |= {_PIPELINE_GROUP, asset}
        self._wake.set()

    def failed(self, asset: str) -> None:
        with self._lock:
            self._running.pop(asset, None)
            self._errors[asset] += 1
            self._dirty |= {_PIPELINE_GROUP, asset}
        self._wake.set()

    def finish(self, wait_s: float) -> None:
        """Asks for the final push and waits for it, or for the pusher to give up, at most `wait_s`."""
        with self._lock:
            self._running.clear()  # a node the step gave up on runs no more
            self._dirty.add(_PIPELINE_GROUP)
        self._ending.set()
        self._wake.set()
        if not self._stopped.wait(wait_s) and self.error is None:
            self.error = f"no answer within {wait_s:g} s"

    def _run(self) -> None:
        try:
            self._baseline = _totals(self.gateway.read(), self.job, self._assets)
            with self._lock:  # new assets: their counter and histogram start at zero
                self._dirty |= {asset for asset in self._assets if asset not in self._baseline}
            last_push = -math.inf
            while True:
                self._wake.wait()
                self._ending.wait(max(0.0, last_push + MIN_PUSH_INTERVAL_S - time.monotonic()))
                self._wake.clear()
                ending = self._ending.is_set()
                self._push_dirty()
                last_push = time.monotonic()
                if ending:
                    return
        except Exception as error:  # noqa: BLE001 -- any failure only ends pushing; reported once by the step
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self._stopped.set()

    def _push_dirty(self) -> None:
        with self._lock:
            groups, self._dirty = self._dirty, set()
            snapshots = [(group, self._families(group)) for group in groups]
        for group, families in snapshots:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Families(families))
            if group is _PIPELINE_GROUP:  # ours alone: PUT also clears the nodes that stopped running
                self.gateway.push(self.job, {}, registry, whole=True)
            else:
                self.gateway.push(self.job, {"asset": group}, registry)

    def _families(self, group: str | None) -> list[Metric]:
        if group is _PIPELINE_GROUP:
            progress = GaugeMetricFamily(
                PIPELINE_PROGRESS,
                "Assets finished / assets the step computes, in percent.",
                labels=["pipeline", "run_id"],
            )
            percent = 100.0 * self.finished / self.total if self.total else 100.0
            progress.add_metric([self.pipeline, self.run_id], percent)
            running = GaugeMetricFamily(
                NODE_RUNNING,
                "Unix time a node still running started; only nodes past the live threshold.",
                labels=_ASSET_LABELS,
            )
            for asset, since in self._running.items():
                running.add_metric([self.pipeline, asset], since)
            return [progress, running]
        labels = [self.pipeline, group]
        baseline = self._baseline.get(group, _Totals())
        errors = CounterMetricFamily(
            STEP_ERRORS, "Failing Hamilton nodes of the asset.", labels=_ASSET_LABELS
        )
        errors.add_metric(labels, baseline.errors + self._errors[group])
        families: list[Metric] = [errors]
        durations = self._durations[group]
        if durations or group not in self._baseline:
            histogram = HistogramMetricFamily(
                STEP_DURATION, "Duration of the asset's Hamilton node.", labels=_ASSET_LABELS
            )
            buckets = [
                (
                    floatToGoString(bound),
                    baseline.buckets.get(bound, 0.0) + sum(d <= bound for d in durations),
                )
                for bound in DURATION_BUCKETS
            ]
            histogram.add_metric(labels, buckets, baseline.duration_sum + sum(durations))
            families.append(histogram)
        if group in self._records:
            records = GaugeMetricFamily(
                RECORDS_PROCESSED, "Rows of the asset's last materialization.", labels=_ASSET_LABELS
            )
            records.add_metric(labels, self._records[group])
            families.append(records)
        return families


class _Families:
    """A collector of fixed metric families: one snapshot, pushed once."""

    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self):
        return self._families


def _totals(exposition: str, job: str, assets: Iterable[str]) -> dict[str, _Totals]:
    """The cumulative values the gateway holds for these assets of a pipeline (its job)."""
    wanted = set(assets)
    totals: dict[str, _Totals] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            asset = sample.labels.get("asset")
            if sample.labels.get("job") != job or asset not in wanted:
                continue
            if sample.name == STEP_ERRORS:
                totals.setdefault(asset, _Totals()).errors = sample.value
            elif sample.name == f"{STEP_DURATION}_bucket":
                totals.setdefault(asset, _Totals()).buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{STEP_DURATION}_sum":
                totals.setdefault(asset, _Totals()).duration_sum = sample.value
    return totals


class PrometheusObserver(StepObserver):
    """Pushes each step's metrics to the Pushgateway its runtime names (`pushgateway_url`, else
    `PROMETHEUS_PUSHGATEWAY_URL`); does nothing without one."""

    def __init__(self):
        self._steps: dict[str, StepMetrics] = {}

    def step_started(self, step: StepInfo) -> None:
        url = step.settings.metrics_url
        if url is None:
            return
        self._steps[step.run_id] = StepMetrics(
            Pushgateway(url),
            step.name,  # the dataflow, or `<dataflow>__<group>` when split
            step.run_id,
            [step.keys[name] for name in step.assets],
            len(step.assets) * max(len(step.partitions), 1),
        )

    def asset_materialized(self, step: StepInfo, asset: str, materialized: Materialized) -> None:
        if (metrics := self._steps.get(step.run_id)) is not None:
            metrics.materialized(step.keys[asset], materialized.duration_s, row_count(materialized.value))
            _report(step, metrics)

    def asset_running(self, step: StepInfo, asset: str, running_s: float) -> None:
        if (metrics := self._steps.get(step.run_id)) is not None:
            metrics.running(step.keys[asset], time.time() - running_s)

    def asset_failed(self, step: StepInfo, asset: str, error: BaseException) -> None:
        if (metrics := self._steps.get(step.run_id)) is not None:
            metrics.failed(step.keys[asset])
            _report(step, metrics)

    def step_finished(self, step: StepInfo, success: bool) -> None:
        if (metrics := self._steps.pop(step.run_id, None)) is not None:
            if metrics.error is None:
                metrics.finish(STEP_END_WAIT_S)
            _report(step, metrics)


def _report(step: StepInfo, metrics: StepMetrics) -> None:
    """One warning per step in the run log, from the step's thread, when pushing failed."""
    if metrics.error is not None and not metrics.reported:
        metrics.reported = True
        step.log.warning(not_delivered(metrics, "this step"))


def not_delivered(metrics: StepMetrics, pusher: str) -> str:
    """The warning when pushing failed: what was lost, where to, why and the fix; no credentials."""
    return (
        f"Prometheus metrics of pipeline '{metrics.pipeline}' (progress, durations, records, "
        f"errors) were not delivered to the Pushgateway at {metrics.gateway.url} "
        f"({PUSHGATEWAY_URL} or the runtime's pushgateway_url): {metrics.error}. The run is not "
        f"affected; {pusher} pushes no more metrics. Fix: check the Pushgateway is up and the "
        "setting reads http://host:9091."
    )
