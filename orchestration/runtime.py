"""`HamiltonRuntime`: what a step reads when it runs (where values go, where metrics go, how
progress is shown), as a Dagster resource.

A resource, not definition-time arguments, because these differ between a laptop, CI and
production while the definitions do not: set a field to `dg.EnvVar("NAME")` and Dagster reads the
variable when the step starts and shows its name, never its value, in the UI; a field can also be
set per run in the launchpad. A field left unset falls back to the environment variable that
configured it before this resource existed, so deployments set up by environment keep working.

Each dataflow's multi-assets carry their runtime under the key `<dataflow>_runtime`, so
`dg.materialize(assets)` works with no resources bound. OpenLineage's transport is not here: the
run-level events are sent from sensors and hooks outside the step, and openlineage-python's own
configuration (`openlineage.yml`, `OPENLINEAGE_*`) keeps both sides on one setting (docs/lineage.md).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import Field

from orchestration.monitoring.metrics import PUSHGATEWAY_URL
from orchestration.monitoring.progress import ProgressSettings
from orchestration.paths import assets_dir

ENVIRONMENT = {
    "store_url": "PIPELINE_STORE_URL",
    "pushgateway_url": PUSHGATEWAY_URL,
    "progress_bar": "PIPELINE_PROGRESS_BAR",
}


class HamiltonRuntime(dg.ConfigurableResource):
    """Settings a Hamilton step reads when it starts. Unset fields fall back to the environment.

    ```python
    hamilton_assets(
        sales_analytics,
        runtime=HamiltonRuntime(store_url=dg.EnvVar("SALES_STORE"), pushgateway_url="http://pgw:9091"),
    )
    ```
    """

    store_url: str | None = Field(
        default=None,
        description="Where values are stored: a folder, or a URL every machine reaches "
        "(s3://bucket/prefix). Unset: $PIPELINE_STORE_URL, else $PIPELINE_DATA_DIR/assets.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway to push step metrics to (http://user:password@host:9091 "
        "for basic auth). Unset: $PROMETHEUS_PUSHGATEWAY_URL; empty: no metrics.",
    )
    progress_bar: bool | None = Field(
        default=None,
        description="Show a progress bar on the step's stderr. Unset: $PIPELINE_PROGRESS_BAR (1 or "
        "0), else only for runs started from a terminal outside `dagster dev`.",
    )
    live_after_s: float | None = Field(
        default=None,
        description="Seconds before a running node is named in the run log. Unset: "
        "$PIPELINE_LIVE_AFTER_S, else 1.",
    )
    heartbeat_s: float | None = Field(
        default=None,
        description="Seconds between progress lines while nodes run. Unset: $PIPELINE_HEARTBEAT_S, else 30.",
    )
    callback_wait_s: float | None = Field(
        default=None,
        description="Seconds a finished step waits for progress callbacks still delivering. Unset: "
        "$PIPELINE_CALLBACK_WAIT_S, else 5.",
    )

    def store_location(self) -> str | Path:
        return self.store_url or assets_dir()

    def metrics_url(self) -> str | None:
        url = self.pushgateway_url if self.pushgateway_url is not None else _env("pushgateway_url")
        return url.strip() or None

    def bar_wanted(self, interactive: bool) -> bool:
        """`progress_bar` (or `$PIPELINE_PROGRESS_BAR`: `1` on, `0` off) decides when set;
        otherwise `interactive` does."""
        if self.progress_bar is not None:
            return self.progress_bar
        setting = _env("progress_bar").strip()
        return setting != "0" if setting else interactive

    def progress_settings(self) -> ProgressSettings:
        """The environment's `ProgressSettings`, with the fields set here taking precedence."""
        fields = ("live_after_s", "heartbeat_s", "callback_wait_s")
        given = {name: getattr(self, name) for name in fields if getattr(self, name) is not None}
        return replace(ProgressSettings.from_env(), **given)


def _env(field: str) -> str:
    return os.environ.get(ENVIRONMENT[field], "")
