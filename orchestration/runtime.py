"""`HamiltonRuntime`: what a step reads when it runs (where values go, where metrics go, how
progress is shown), as a Dagster resource; `RuntimeSettings`: the same, resolved for one step.

A resource, not definition-time arguments, because these differ between a laptop, CI and
production while the definitions do not: a field set to `dg.EnvVar("NAME")` is read when the step
starts and the UI shows the variable's name, never its value; any field can be set for one run in
the launchpad. A field left unset falls back to the environment variable that configured it
before this resource existed, so deployments set up by environment keep working.

Each dataflow's multi-assets carry their runtime under the key `<dataflow>_runtime`, so
`dg.materialize(assets)` works with no resources bound. OpenLineage's transport is not here: the
run-level events are sent from sensors and hooks outside the step, and openlineage-python's own
configuration (`openlineage.yml`, `OPENLINEAGE_*`) keeps both sides on one setting (docs/lineage.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
from pydantic import Field

from orchestration.monitoring.metrics import PUSHGATEWAY_URL
from orchestration.monitoring.progress import ProgressSettings
from orchestration.paths import assets_dir

PROGRESS_BAR = "PIPELINE_PROGRESS_BAR"


@dataclass(frozen=True)
class RuntimeSettings:
    """A step's runtime settings, resolved when it starts: plain values, nothing of Dagster's."""

    store_location: str | Path
    metrics_url: str | None  # None: no metrics
    progress_bar: bool | None  # None: only for runs started from a terminal
    progress: ProgressSettings

    def shows_progress_bar(self, interactive: bool) -> bool:
        return interactive if self.progress_bar is None else self.progress_bar


class HamiltonRuntime(dg.ConfigurableResource):
    """Settings a Hamilton step reads when it starts; an unset field falls back to the environment.

    ```python
    hamilton_assets(
        sales_analytics,
        runtime=HamiltonRuntime(store_url=dg.EnvVar("SALES_STORE"), pushgateway_url="http://pgw:9091"),
    )
    ```

    A field set here (or in the launchpad) wins over `StepOptions.store_root` and
    `StepOptions.progress_settings`, which win over the environment.
    """

    store_url: str | None = Field(
        default=None,
        description="Where values are stored: a folder, or a URL every machine reaches "
        "(s3://bucket/prefix). Unset: StepOptions.store_root, else $PIPELINE_STORE_URL, else "
        "$PIPELINE_DATA_DIR/assets.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway to push step metrics to (http://user:password@host:9091 "
        "for basic auth); empty: no metrics. Unset: $PROMETHEUS_PUSHGATEWAY_URL.",
    )
    progress_bar: bool | None = Field(
        default=None,
        description="Show a progress bar on the step's stderr. Unset: $PIPELINE_PROGRESS_BAR (1 or "
        "0), else only for runs started from a terminal outside `dagster dev`.",
    )
    live_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds before a running node is named in the run log. Unset: "
        "$PIPELINE_LIVE_AFTER_S, else 1.",
    )
    heartbeat_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between progress lines while nodes run. Unset: $PIPELINE_HEARTBEAT_S, else 30.",
    )
    callback_wait_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds a finished step waits for progress callbacks still delivering. Unset: "
        "$PIPELINE_CALLBACK_WAIT_S, else 5.",
    )

    def settings(
        self, store_root: str | None = None, progress: ProgressSettings | None = None
    ) -> RuntimeSettings:
        """Resolved for one step: this resource's fields first, then what the definitions fixed
        (`store_root`, `progress`), then the environment."""
        metrics_url = self.pushgateway_url
        if metrics_url is None:
            metrics_url = os.environ.get(PUSHGATEWAY_URL, "")
        fields = ("live_after_s", "heartbeat_s", "callback_wait_s")
        given = {name: getattr(self, name) for name in fields if getattr(self, name) is not None}
        return RuntimeSettings(
            store_location=self.store_url or store_root or assets_dir(),
            metrics_url=metrics_url.strip() or None,
            progress_bar=self.progress_bar if self.progress_bar is not None else progress_bar_from_env(),
            progress=replace(progress or ProgressSettings.from_env(), **given),
        )


def progress_bar_from_env() -> bool | None:
    """`$PIPELINE_PROGRESS_BAR`: `0` off, any other value on, unset None (decided by the caller)."""
    setting = os.environ.get(PROGRESS_BAR, "").strip()
    return setting != "0" if setting else None
