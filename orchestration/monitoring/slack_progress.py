"""Step progress as Slack messages, rate limited: `*<dataflow>: 40%*` and the progress line.

The shipped dataflows send them when `PROGRESS_SLACK_WEBHOOK_URL` is set (an incoming webhook; the
alerts' `SLACK_WEBHOOK_URL` channel or a quieter one): each step's first and final update, and in
between at most one per `PROGRESS_SLACK_INTERVAL_S` seconds (default 60) and per 10% more done, so
about a dozen per step however long it runs. As with alerts, the URL stays a `dg.EnvVar` until a
message is sent; a failed delivery is logged by the step, never raised: one warning in the run log
per step. Posts wait at most `PROGRESS_TIMEOUT_S` (3 s) for Slack, and a post that timed out ends
posting for the rest of the step, so a hung webhook delays a step by 3 s at most.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import dagster as dg

from orchestration.monitoring.callbacks import ProgressCallback, RateLimited
from orchestration.notifiers import NotDelivered, SlackWebhook

URL_VARIABLE = "PROGRESS_SLACK_WEBHOOK_URL"
INTERVAL_VARIABLE = "PROGRESS_SLACK_INTERVAL_S"
PROGRESS_TIMEOUT_S = 3.0


def slack_progress(
    webhook: SlackWebhook,
    title: str,
    min_interval_s: float = 60.0,
    min_percent: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    timeout_s: float = PROGRESS_TIMEOUT_S,
) -> RateLimited:
    """A progress callback posting to `webhook`; `title` names the dataflow in each message."""
    hung = False  # a post of this step timed out: the rest of the step does not wait on Slack

    def post(step: str, percent: float, message: str) -> None:
        nonlocal hung
        if percent == 0:  # a step's first update
            hung = False
        elif hung:
            return
        try:
            webhook.process_config_and_initialize().send(f"{title}: {percent:.0f}%", message, timeout_s)
        except NotDelivered as error:
            hung = error.timed_out
            raise

    description = f"Progress of {title} via {webhook.describe()}"
    return RateLimited(post, min_interval_s, min_percent, clock, description)


def progress_callbacks_from_env(title: str) -> list[ProgressCallback]:
    """Slack progress for `hamilton_assets(progress_callbacks=...)` if the environment asks for it."""
    if not os.environ.get(URL_VARIABLE):
        return []
    interval = float(os.environ.get(INTERVAL_VARIABLE) or 60)
    return [slack_progress(SlackWebhook(url=dg.EnvVar(URL_VARIABLE)), title, interval)]
