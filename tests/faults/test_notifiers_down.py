"""Notifiers that are down: Slack progress posts during a run, and the failure alert's e-mail and
webhook after one.

The Pushgateway case is tests/monitoring/test_metrics.py's, a refused Slack alert webhook is
tests/orchestration/test_alerts.py's. Here: the progress webhook refusing or hanging (the run
succeeds, at about its normal speed, with one warning in its run log naming what was not
delivered, never the URL), and the alert's SMTP server refusing or hanging and its webhook
answering 500 (the sensor tick says which notifier failed; the others still get the alert).
"""

from __future__ import annotations

import logging
import time

import dagster as dg
import pytest

from orchestration import hamilton_assets
from orchestration.monitoring.slack_progress import PROGRESS_TIMEOUT_S, progress_callbacks_from_env
from orchestration.notifiers import TIMEOUT_S as ALERT_TIMEOUT_S
from orchestration.notifiers import SlackWebhook, SmtpEmail
from orchestration.ops.alerts import Alerting, alert_sensors
from tests.conftest import run_event
from tests.orchestration import counting_flow
from tests.orchestration.test_alerts import evaluate
from tests.support import servers
from tests.support.http_receiver import ENDPOINT, LineageReceiver
from tests.support.ports import free_port


def warnings_in_run_log(instance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.level == logging.WARNING]


def timed_run(instance):
    assets = hamilton_assets(counting_flow, progress_callbacks=progress_callbacks_from_env("counting"))
    started = time.monotonic()
    result = dg.materialize([assets], instance=instance)
    return result, time.monotonic() - started


@pytest.fixture
def silent_server():
    """host, port of a TCP server that accepts connections and never says a word (a hung SMTP
    server sends no greeting)."""
    with servers.silent_server() as address:
        yield address


@pytest.fixture
def failed_run(make_module, data_dir, instance):
    flow = make_module("def broken() -> int:\n    raise RuntimeError('boom')\n")
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    return run, run_event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)


@pytest.fixture
def progress_env(monkeypatch):
    counting_flow.CALLS.clear()
    monkeypatch.delenv("FAIL_NODE", raising=False)
    monkeypatch.setenv("PROGRESS_SLACK_INTERVAL_S", "0")  # a post at every 10% more: 5 per run

    def point_at(url: str | None) -> None:
        if url is None:
            monkeypatch.delenv("PROGRESS_SLACK_WEBHOOK_URL", raising=False)
        else:
            monkeypatch.setenv("PROGRESS_SLACK_WEBHOOK_URL", url)

    return point_at


@pytest.mark.parametrize("mode", ["refuse", "500", "hang"])
def test_a_slack_progress_webhook_that_is_down_leaves_one_warning_and_barely_slows_the_run(
    mode, progress_env, data_dir, instance, figures
):
    progress_env(None)
    timed_run(instance)  # warm up
    _, without = timed_run(instance)
    with LineageReceiver(mode) as slack:
        progress_env(f"{slack.url}{ENDPOINT}")
        result, took = timed_run(instance)

    assert result.success
    assert len(result.get_asset_materialization_events()) == 5
    [warning] = [w for w in warnings_in_run_log(instance, result.run_id) if "progress" in w.lower()]
    assert warning.startswith("Progress of counting via Slack webhook: not delivered ("), warning
    assert "127.0.0.1" not in warning and str(slack.port) not in warning  # the URL is the secret
    assert took - without < PROGRESS_TIMEOUT_S + 2.0, f"{took:.1f} s against {without:.1f} s without Slack"
    figures.setdefault("slack progress down", {})[mode] = {
        "run s": round(took, 2),
        "without Slack s": round(without, 2),
        "warning": warning,
    }


def test_alerts_name_the_smtp_server_that_refuses_and_the_webhook_that_answers_500(failed_run, instance):
    run, failure = failed_run
    with LineageReceiver("500") as hook:
        down = Alerting(
            slack=SlackWebhook(url=f"{hook.url}{ENDPOINT}"),
            email=SmtpEmail(
                host="127.0.0.1",
                port=free_port(),
                sender="dagster@example.com",
                recipients="oncall@example.com",
            ),
        )
        [sensor] = alert_sensors()
        result = evaluate(sensor, instance, run, failure, {"alerting": down})
        assert hook.rejected == 1

    assert result.skip_message == (
        f"alert for run {run.run_id}: NOT delivered via Slack webhook (HTTPError: 500 Internal Server Error); "
        f"NOT delivered via e-mail via 127.0.0.1:{down.email.port} "
        "(ConnectionRefusedError: [Errno 111] Connection refused)"
    )


def test_a_hung_smtp_server_holds_the_alert_tick_for_one_timeout_and_the_webhook_still_gets_it(
    failed_run, instance, silent_server, figures
):
    run, failure = failed_run
    host, port = silent_server
    with LineageReceiver("ok") as hook:
        alerting = Alerting(
            slack=SlackWebhook(url=f"{hook.url}{ENDPOINT}"),
            email=SmtpEmail(
                host=host, port=port, sender="dagster@example.com", recipients="oncall@example.com"
            ),
        )
        [sensor] = alert_sensors()
        started = time.monotonic()
        result = evaluate(sensor, instance, run, failure, {"alerting": alerting})
        took = time.monotonic() - started
        [message] = hook.wait_for(1, 5)

    assert run.run_id in message["text"]
    assert result.skip_message == (
        f"alert for run {run.run_id}: sent via Slack webhook; "
        f"NOT delivered via e-mail via {host}:{port} "
        "(SMTPServerDisconnected: Connection unexpectedly closed: timed out)"
    )
    assert ALERT_TIMEOUT_S <= took < ALERT_TIMEOUT_S + 5
    figures["hung SMTP server"] = {"alert tick s": round(took, 1), "skip message": result.skip_message}
