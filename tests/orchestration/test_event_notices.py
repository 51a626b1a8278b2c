"""Retry and freshness notices, their rate limit, and the Apprise notifier: real Dagster runs and
Dagster's own freshness daemon against a real instance, messages received by the suite's real
loopback HTTP receiver."""

from __future__ import annotations

import base64
import logging
import time
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from orchestration import hamilton_assets
from orchestration.notifiers import AppriseNotifier, SlackWebhook
from orchestration.ops.alerts import Alerting, alert_sensors, alerting_from_env
from orchestration.ops.event_notices import (
    freshness_from_env,
    freshness_notice_sensor,
    retries_from_env,
    retry_notice_sensor,
)
from orchestration.ops.notice_limits import repeat_seconds_from_env
from tests.conftest import run_event
from tests.orchestration.test_alerts import evaluate
from tests.support.http_receiver import ENDPOINT, LineageReceiver

HALF_HOUR_S = 30 * 60
SECRET = "marker-secret-4711"

FLAKY_FLOW = """
import os


def flaky() -> int:
    '''Fails on its first try, as a call to a busy API would.'''
    marker = os.path.join(os.environ["PIPELINE_DATA_DIR"], "flaky-tried")
    if not os.path.exists(marker):
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()
        raise ConnectionError("the upstream API timed out")
    return 1
"""


@pytest.fixture
def receiver():
    with LineageReceiver("ok") as receiver:
        yield receiver


@pytest.fixture
def alerting(receiver):
    return Alerting(slack=SlackWebhook(url=f"{receiver.url}{ENDPOINT}"))


def tick(sensor, instance, alerting, cursor=None, definitions=None):
    """One evaluation, as the daemon's; returns (skip message, cursor)."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=definitions, resources={"alerting": alerting}
    ) as context:
        result = sensor.evaluate_tick(context)
    return result.skip_message, result.cursor


@pytest.fixture
def flaky_defs(make_module, data_dir):
    flow = make_module(FLAKY_FLOW)
    assets = hamilton_assets(flow, retry_policy=dg.RetryPolicy(max_retries=2))  # 3 attempts in all
    return dg.Definitions(assets=[assets], jobs=[dg.define_asset_job("flaky_job", selection="*")])


def test_a_retried_step_is_announced_once_with_its_attempt_of_the_policys_attempts(
    flaky_defs, instance, alerting, receiver
):
    result = flaky_defs.resolve_job_def("flaky_job").execute_in_process(instance=instance)
    assert result.success  # the second attempt succeeded
    [step] = {e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"}
    sensor = retry_notice_sensor(repeat_s=HALF_HOUR_S)

    said, cursor = tick(sensor, instance, alerting, definitions=flaky_defs)

    [message] = receiver.events
    assert said == "1 retry notices: sent via Slack webhook"
    text = message["text"]
    assert f"Step {step} of job flaky_job failed on attempt 1 of 3; Dagster retries it." in text
    assert "ConnectionError" in text and "the upstream API timed out" in text
    assert f"/runs/{result.run_id}" in text
    # the next tick, and a restarted daemon (a new sensor object, the stored cursor): nothing again
    assert tick(sensor, instance, alerting, cursor, flaky_defs)[0] == "no new retry notices"
    restarted = retry_notice_sensor(repeat_s=HALF_HOUR_S)
    assert tick(restarted, instance, alerting, cursor, flaky_defs)[0] == "no new retry notices"
    assert len(receiver.events) == 1


def test_a_retry_in_a_job_this_code_location_does_not_define_says_the_attempts_are_unknown(
    flaky_defs, instance, alerting, receiver
):
    flaky_defs.resolve_job_def("flaky_job").execute_in_process(instance=instance)

    tick(retry_notice_sensor(repeat_s=0), instance, alerting, definitions=dg.Definitions())

    [message] = receiver.events
    assert "failed on attempt 1 of an unknown number" in message["text"]
    assert "the retry event does not carry its retry policy" in message["text"]


def many_flaky_steps(count: int) -> dg.JobDefinition:
    """A job of `count` ops, each failing its first try in each run, with one retry."""
    tried: set[tuple[str, str]] = set()

    def flaky_op(number: int) -> dg.OpDefinition:
        @dg.op(name=f"step_{number:02d}", retry_policy=dg.RetryPolicy(max_retries=1))
        def step(context) -> None:
            if (context.run_id, context.op.name) not in tried:
                tried.add((context.run_id, context.op.name))
                raise ConnectionError("busy")

        return step

    @dg.job(name="many_flaky")
    def many_flaky():
        for number in range(count):
            flaky_op(number)()

    return many_flaky


def test_many_retries_in_one_tick_are_one_digest_and_a_flapping_step_is_held_back(
    instance, alerting, receiver
):
    job = many_flaky_steps(12)
    defs = dg.Definitions(jobs=[job])
    assert job.execute_in_process(instance=instance).success
    sensor = retry_notice_sensor(repeat_s=HALF_HOUR_S)

    said, cursor = tick(sensor, instance, alerting, definitions=defs)

    [digest] = receiver.events  # one message, not twelve
    assert said == "12 retry notices: sent via Slack webhook"
    lines = digest["text"].splitlines()
    assert lines[0] == "*[dagster] 12 retry notices*"
    assert len([line for line in lines if line.startswith("- many_flaky / step_")]) == 10
    assert lines[-1] == "… and 2 more"
    assert "attempt 1 of 2 failed (ConnectionError: busy)" in lines[1]

    # the same steps flap again in the next run: held back for the rate limit's time
    assert job.execute_in_process(instance=instance).success
    said, cursor = tick(sensor, instance, alerting, cursor, defs)
    assert said == "no new retry notices (12 held back: sent about the same within the rate limit)"
    assert len(receiver.events) == 1
    # without a rate limit (NOTICE_REPEAT_MIN=0) the next run's retries go out again
    assert job.execute_in_process(instance=instance).success
    tick(retry_notice_sensor(repeat_s=0), instance, alerting, cursor, defs)
    assert len(receiver.events) == 2


FRESH_FLOW = """
from hamilton.function_modifiers import tag


@tag(**{"dagster.freshness_hours": "2", "dagster.freshness_warn_hours": "1"})
def report() -> int:
    '''Read every morning.'''
    return 1
"""

DEFS_MODULE = """
import dagster as dg
from orchestration import hamilton_assets
import {flow}

defs = dg.Definitions(assets=[hamilton_assets({flow})])
"""


@pytest.fixture
def freshness_daemon(make_module, data_dir, instance):
    """(flow module, definitions, evaluate): `evaluate(at)` runs one iteration of Dagster's own
    freshness daemon at time `at` over an in-process code location of the flow."""
    flow = make_module(FRESH_FLOW)
    defs_module = make_module(DEFS_MODULE.format(flow=flow.__name__))
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=defs_module.__file__, attribute="defs")
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:

        def evaluate(at: float) -> None:
            with freeze_time(at):
                list(FreshnessDaemon().run_iteration(workspace))

        yield flow, defs_module.defs, evaluate


def states(instance) -> list[str]:
    records = instance.get_freshness_state_records([dg.AssetKey("report")])
    return [record.freshness_state.value for record in records.values()]


def test_an_asset_that_turns_stale_is_announced_once_per_state_change(
    freshness_daemon, instance, alerting, receiver
):
    flow, defs, evaluate = freshness_daemon
    dg.materialize([hamilton_assets(flow)], instance=instance)
    materialized = time.time()
    sensor = freshness_notice_sensor(repeat_s=HALF_HOUR_S)
    evaluate(materialized + 60)
    assert states(instance) == [FreshnessState.PASS.value]
    said, cursor = tick(sensor, instance, alerting, definitions=defs)
    assert said == "no new freshness notices" and not receiver.events  # fresh: nothing to say

    evaluate(materialized + timedelta(minutes=70).total_seconds())  # past the 1 h warning
    said, cursor = tick(sensor, instance, alerting, cursor, defs)
    evaluate(materialized + timedelta(minutes=75).total_seconds())  # still WARN: no new event
    again, cursor = tick(sensor, instance, alerting, cursor, defs)

    [warn] = receiver.events
    assert said == "1 freshness notices: sent via Slack webhook" and again == "no new freshness notices"
    assert warn["text"].startswith("*[dagster] report is nearly stale (WARN)*")
    assert "its freshness went from PASS to WARN. Its policy: fail after 2 h, warn after 1 h." in warn["text"]
    assert "/assets/report" in warn["text"]

    evaluate(materialized + timedelta(hours=3).total_seconds())  # past the 2 h limit
    said, cursor = tick(sensor, instance, alerting, cursor, defs)
    [_, fail] = receiver.events
    assert fail["text"].startswith("*[dagster] report is stale (FAIL)*")
    assert "went from WARN to FAIL" in fail["text"]


def test_apprise_urls_reach_the_real_receiver_with_their_secrets_in_no_message_or_log(
    receiver, make_module, data_dir, instance, monkeypatch, caplog
):
    flow = make_module("def broken() -> int:\n    raise RuntimeError('boom')\n")
    result = dg.materialize([hamilton_assets(flow)], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    failure = run_event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)
    url = f"json://alerts:{SECRET}@127.0.0.1:{receiver.port}{ENDPOINT}?+X-Api-Key={SECRET}"
    monkeypatch.setenv("ALERT_APPRISE_URLS", url)
    alerting = alerting_from_env()
    [sensor] = alert_sensors()
    caplog.set_level(logging.DEBUG)  # Apprise and urllib3 write URLs at DEBUG

    said = evaluate(sensor, instance, run, failure, {"alerting": alerting}).skip_message

    [message] = receiver.events
    [headers] = receiver.headers
    assert message["title"] == f"[dagster] {run.job_name} failed" and run.run_id in message["message"]
    assert headers["X-Api-Key"] == SECRET
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"alerts:{SECRET}".encode()).decode()
    assert said == f"alert for run {run.run_id}: sent via Apprise (json://)"
    assert "Loaded JSON URL: json://" in caplog.text  # Apprise did log the URL, masked
    assert SECRET not in caplog.text and SECRET not in said

    receiver.set_mode("500")
    said = evaluate(sensor, instance, run, failure, {"alerting": alerting}).skip_message
    assert said == (
        f"alert for run {run.run_id}: NOT delivered via Apprise (json://) "
        "(#1 (json://): Failed to send JSON POST notification: Internal server error., error=500.)"
    )
    assert SECRET not in caplog.text


def test_one_apprise_url_down_does_not_stop_the_next(receiver):
    down = LineageReceiver("refuse")
    notifier = AppriseNotifier(
        urls=f"json://127.0.0.1:{down.port}{ENDPOINT}/{SECRET}, json://127.0.0.1:{receiver.port}{ENDPOINT}"
    )
    with pytest.raises(Exception, match=r"^#1 \(json://\): A Connection error occurred") as error:
        notifier.send("subject", "body")
    assert SECRET not in str(error.value) and "127.0.0.1" not in str(error.value)
    assert [event["title"] for event in receiver.events] == ["subject"]


def test_bad_settings_name_the_variable_and_the_fix(monkeypatch):
    for variable in ("RETRY_ALERTS", "FRESHNESS_ALERTS", "NOTICE_REPEAT_MIN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ALERT_APPRISE_URLS", f"json://127.0.0.1:9/hook slak://{SECRET}/x")
    with pytest.raises(ValueError) as error:
        alerting_from_env()
    assert str(error.value).startswith(
        "ALERT_APPRISE_URLS: URL #2 (slak://) is not one Apprise can send to. Fix: give Apprise URLs"
    )
    assert SECRET not in str(error.value)
    for variable, read in (("RETRY_ALERTS", retries_from_env), ("FRESHNESS_ALERTS", freshness_from_env)):
        assert read() is False  # opt-in
        monkeypatch.setenv(variable, "on")
        with pytest.raises(ValueError, match=f"{variable}='on': give true or false"):
            read()
        monkeypatch.setenv(variable, "TRUE")
        assert read() is True
    assert repeat_seconds_from_env() == HALF_HOUR_S  # default
    monkeypatch.setenv("NOTICE_REPEAT_MIN", "5m")
    with pytest.raises(ValueError, match="NOTICE_REPEAT_MIN='5m': give a whole number of minutes, 0 or more"):
        repeat_seconds_from_env()


def test_states_from_before_the_sensor_was_on_are_not_announced(
    freshness_daemon, instance, alerting, receiver
):
    flow, defs, evaluate = freshness_daemon
    dg.materialize([hamilton_assets(flow)], instance=instance)
    materialized = time.time()
    evaluate(materialized + 60)
    evaluate(materialized + timedelta(minutes=70).total_seconds())  # WARN before the sensor is on
    sensor = freshness_notice_sensor(repeat_s=HALF_HOUR_S)
    said, cursor = tick(sensor, instance, alerting, definitions=defs)
    assert said == "no new freshness notices" and not receiver.events

    evaluate(materialized + timedelta(hours=3).total_seconds())
    tick(sensor, instance, alerting, cursor, defs)
    [fail] = receiver.events
    assert fail["text"].startswith("*[dagster] report is stale (FAIL)*")
