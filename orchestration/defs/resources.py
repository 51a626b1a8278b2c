"""Alerts go to every notifier configured in the environment (see orchestration/ops/alerts.py)."""

import dagster as dg

from orchestration.ops.alerts import alerting_from_env

defs = dg.Definitions(resources={"alerting": alerting_from_env()})
