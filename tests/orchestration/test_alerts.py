"""Run alerts against a real SMTP server (aiosmtpd) and a real HTTP webhook receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from orchestration import hamilton_assets
from orchestration.notifiers import SlackWebhook, SmtpEmail
from orchestration.ops.alerts import Alerting, alert_sensors, alerting_from_env, check_warnings_from_env
from tests.conftest import run_event
from tests.support.ports import free_port

WEBHOOK_SECRET_PATH = "/services/T000/B000/marker-secret-hook-4711"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


@pytest.fixture
def failed_run(make_module, data_dir, instance):
    flow = make_module("def broken() -> int:\n    raise RuntimeError('boom')\n")
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = run_event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)
    return run, failure


def evaluate(sensor, instance, run, event, resources):
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources=resources,
    ) as context:
        if sensor.name == "run_failure_alerts":
            context = context.for_run_failure()
        return sensor(context)


def test_failure_alert_reaches_smtp_and_webhook(smtp, webhook, failed_run, instance, monkeypatch):
    (controller, inbox), (url, received) = smtp, webhook
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url + WEBHOOK_SECRET_PATH)
    monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALERT_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("ALERT_EMAIL_FROM", "dagster@example.com")
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.com,data@example.com")
    alerting = alerting_from_env()
    assert alerting.slack is not None and alerting.email is not None
    [sensor] = alert_sensors()
    run, failure = failed_run

    result = evaluate(sensor, instance, run, failure, {"alerting": alerting})

    assert "sent via Slack webhook" in result.skip_message and "sent via e-mail" in result.skip_message
    [(path, payload)] = received
    assert path == WEBHOOK_SECRET_PATH and run.run_id in payload["text"] and "boom" in payload["text"]
    [(recipients, content)] = inbox.messages
    assert recipients == ["oncall@example.com", "data@example.com"]
    assert f"Subject: [dagster] {run.job_name} failed" in content and run.run_id in content
    assert "marker-secret-hook-4711" not in result.skip_message


def test_a_notifier_that_is_down_is_reported_and_the_others_still_get_the_alert(smtp, failed_run, instance):
    controller, inbox = smtp
    run, failure = failed_run
    down = SlackWebhook(url="http://127.0.0.1:9/marker-secret-hook-4711")  # nothing listens on port 9
    email = SmtpEmail(
        host="127.0.0.1", port=controller.port, sender="dagster@example.com", recipients="oncall@example.com"
    )
    [sensor] = alert_sensors()

    result = evaluate(sensor, instance, run, failure, {"alerting": Alerting(slack=down, email=email)})

    assert "NOT delivered via Slack webhook (URLError: " in result.skip_message
    assert "marker-secret-hook-4711" not in result.skip_message
    assert len(inbox.messages) == 1


def test_success_notices_only_for_the_jobs_that_ask(webhook, make_module, data_dir, instance):
    url, received = webhook
    flow = make_module("def fine() -> int:\n    return 1\n")
    job = dg.define_asset_job("fine_job", selection="*")
    defs = dg.Definitions(assets=[hamilton_assets(flow)], jobs=[job])
    result = defs.resolve_job_def("fine_job").execute_in_process(instance=instance)
    run = instance.get_run_by_id(result.run_id)
    success = run_event(instance, run.run_id, dg.DagsterEventType.RUN_SUCCESS)
    failure_alerts, notices = alert_sensors(notice_jobs=[job])
    assert [s.name for s in alert_sensors()] == ["run_failure_alerts"]

    evaluate(notices, instance, run, success, {"alerting": Alerting(slack=SlackWebhook(url=url))})

    [(_, payload)] = received
    assert "fine_job succeeded" in payload["text"] and run.run_id in payload["text"]


def test_secrets_are_configured_through_envvar_so_the_ui_shows_only_names(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://hooks.example/marker-secret-hook-4711")
    slack = alerting_from_env().slack
    assert isinstance(slack._get_non_default_public_field_values()["url"], dg.EnvVar)


WARNING_FLOW = """
from hamilton.function_modifiers import check_output


@check_output(range=(0, 10), importance="warn")
def score() -> int:
    '''Out of its usual band today.'''
    return 42


@check_output(range=(0, 10), importance="warn")
def steady() -> int:
    return 5
"""


def test_failed_warn_level_checks_reach_a_person_once_per_run(
    webhook, make_module, data_dir, instance, monkeypatch
):
    url, received = webhook
    flow = make_module(WARNING_FLOW)
    result = dg.materialize([hamilton_assets(flow)], instance=instance)
    assert result.success  # a warn-level check never fails the run
    run = instance.get_run_by_id(result.run_id)
    success = run_event(instance, run.run_id, dg.DagsterEventType.RUN_SUCCESS)
    assert [s.name for s in alert_sensors()] == ["run_failure_alerts"]  # opt-in
    [_, warnings] = alert_sensors(check_warnings=True)

    evaluate(warnings, instance, run, success, {"alerting": Alerting(slack=SlackWebhook(url=url))})

    [(_, payload)] = received  # one message however many checks failed
    assert "1 warn-level check(s) failed" in payload["text"] and "score:range_validator" in payload["text"]
    assert "steady" not in payload["text"] and run.run_id in payload["text"]

    monkeypatch.setenv("CHECK_WARNING_ALERTS", "yes please")
    with pytest.raises(ValueError, match="CHECK_WARNING_ALERTS='yes please': give true or false"):
        check_warnings_from_env()
