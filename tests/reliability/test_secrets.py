"""Secrets never leak: every secret the project reads from the environment is set to a unique random
marker, real runs (successful and failing, generated and shipped dataflows) and the alert and
lineage sensors are run against real local receivers, and then every marker is searched for
everywhere it must not be:

- every file under the test's folder (data directory, DAGSTER_HOME): SQLite databases row by row,
  zlib-compressed snapshots unpacked, zip entries, Parquet contents and metadata, compute logs,
  lineage `events.jsonl` and `spool.db`, stored values, the code-version cache;
- every Dagster event log entry of every run (messages, metadata, error info and stack traces);
- OpenLineage request bodies and headers other than `Authorization`;
- Slack message bodies and e-mails received; what the Pushgateway exposes;
- captured stdout/stderr (file descriptors, so subprocesses and C code count too) and Python logging;
- sensor results and step failure messages (exception text).

Besides the raw marker, the encodings a leaked credential header would show are searched for
(Basic auth and SMTP AUTH base64). Each test also proves the secret was really used (the
Authorization header arrived, the webhook path was posted to, the SMTP login carried the password),
so an absent marker means "not leaked", not "never read".

PostgreSQL passwords (`DAGSTER_PG_URL`) are covered by tests/deploy/test_postgres_profile.py.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster._core.instance.ref import InstanceRef

from hamilton_pipelines.sample_data import write_sample_sales
from orchestration import hamilton_assets
from orchestration.lineage import client as lineage_client
from orchestration.lineage import runs as lineage_runs
from orchestration.lineage.delivery import LineageSpool
from orchestration.monitoring.slack_progress import progress_callbacks_from_env
from orchestration.ops.alerts import alert_sensors, alerting_from_env
from tests.conftest import run_event, step_failure
from tests.support.http_receiver import LineageReceiver
from tests.support.ports import free_port
from tests.support.prometheus import pushgateway_fixture  # noqa: F401  (the `pushgateway` fixture: a real Pushgateway)

ROOT = Path(__file__).resolve().parents[2]
SMTP_USER = "alerts"
PUSH_USER = "metrics"
DELIVERY_TIMEOUT_S = 30.0
SECRET_VARIABLES = (
    "OPENLINEAGE_API_KEY",
    "SLACK_WEBHOOK_URL",
    "PROGRESS_SLACK_WEBHOOK_URL",
    "ALERT_SMTP_PASSWORD",
    "PROMETHEUS_PUSHGATEWAY_URL",
    "ALERT_APPRISE_URLS",
)
SETTINGS = (
    *SECRET_VARIABLES,
    "OPENLINEAGE_URL",
    "ALERT_SMTP_HOST",
    "ALERT_SMTP_PORT",
    "ALERT_SMTP_USER",
    "ALERT_EMAIL_FROM",
    "ALERT_EMAIL_TO",
    "ALERT_SMTP_STARTTLS",
    "PIPELINE_STORE_URL",
    "SUCCESS_NOTICE_JOBS",
)

GOOD_FLOW = '''
import pandas as pd


def orders() -> pd.DataFrame:
    """Two orders."""
    return pd.DataFrame({"region": ["North", "South"], "amount": [3.5, 4.0]})


def total(orders: pd.DataFrame) -> float:
    """Their total."""
    return float(orders["amount"].sum())


def report(total: float) -> str:
    """A one-line report."""
    return f"total {total}"
'''

BAD_FLOW = '''
def fetched() -> int:
    """Fine."""
    return 1


def enriched(fetched: int) -> int:
    """Fails, as a call to an upstream API would."""
    raise RuntimeError("the upstream API refused the request")
'''


# -- markers and where they are searched for --------------------------------------------------------


@dataclass
class Markers:
    """One random marker per secret, and the encodings under which a leak could hide."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls) -> Markers:
        return cls({name: f"mk{uuid.uuid4().hex}" for name in SECRET_VARIABLES})

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def forms(self) -> dict[str, bytes]:
        """What to search for: each marker, and the credential encodings that would carry it."""
        forms = {name: marker.encode() for name, marker in self.values.items()}
        push, smtp = self["PROMETHEUS_PUSHGATEWAY_URL"], self["ALERT_SMTP_PASSWORD"]
        forms["Basic auth of PROMETHEUS_PUSHGATEWAY_URL"] = base64.b64encode(f"{PUSH_USER}:{push}".encode())
        forms["AUTH PLAIN of ALERT_SMTP_PASSWORD"] = base64.b64encode(f"\0{SMTP_USER}\0{smtp}".encode())
        forms["AUTH LOGIN of ALERT_SMTP_PASSWORD"] = base64.b64encode(smtp.encode())
        return forms


def _sqlite_texts(path: Path) -> Iterator[bytes]:
    """Every value of every row of every table, with zlib-compressed blobs (Dagster's snapshots)
    unpacked."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, str):
                        yield value.encode()
                    elif isinstance(value, bytes):
                        yield value
                        try:
                            yield zlib.decompress(value)
                        except zlib.error:
                            pass
    finally:
        connection.close()


def readable_forms(path: Path) -> Iterator[bytes]:
    """A file's bytes, and what compressed or structured files hold once unpacked."""
    data = path.read_bytes()
    yield data
    if data.startswith(b"SQLite format 3\0"):
        yield from _sqlite_texts(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                yield archive.read(name)
    if path.name.endswith(".parquet"):
        table = pq.read_table(path)
        yield json.dumps(table.to_pylist(), default=str).encode()
        yield repr(table.schema.metadata).encode()


def leaks(forms: dict[str, bytes], haystacks: dict[str, bytes | str]) -> list[str]:
    """`<secret> in <where>` for every marker form found in a haystack."""
    found = []
    for where, haystack in haystacks.items():
        data = haystack.encode("utf-8", "surrogateescape") if isinstance(haystack, str) else haystack
        found += [f"{name} in {where}" for name, form in forms.items() if form in data]
    return found


def file_haystacks(*roots: Path) -> dict[str, bytes]:
    haystacks = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                for i, form in enumerate(readable_forms(path)):
                    haystacks[f"{path}#{i}"] = form
    return haystacks


def event_log_haystacks(instance) -> dict[str, str]:
    """Every event of every run, serialized whole: messages, metadata, errors and their causes."""
    return {
        f"run {run.run_id} event {i} ({entry.dagster_event_type})": dg.serialize_value(entry)
        for run in instance.get_runs()
        for i, entry in enumerate(instance.all_logs(run.run_id))
    }


# -- real receivers ---------------------------------------------------------------------------


class HttpInbox:
    """A webhook receiver (Slack-like) on 127.0.0.1 recording each POST's path, headers and body."""

    def __init__(self):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                inbox.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, path_part: str) -> list[bytes]:
        return [body for path, _, body in self.requests if path_part in path]


class SmtpInbox:
    """A real SMTP server (aiosmtpd) that requires AUTH and records logins and messages."""

    def __init__(self, password: str):
        self.messages: list[str] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self._password = password.encode()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=free_port(),
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self.controller.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == self._password, handled=False)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"

    def close(self):
        self.controller.stop()


@pytest.fixture
def markers() -> Markers:
    return Markers.new()


@pytest.fixture
def clean_env(monkeypatch, data_dir):
    """None of the settings from outside the test; none of openlineage-python's copies after it.

    openlineage-python copies OPENLINEAGE_URL/OPENLINEAGE_API_KEY into
    `OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__*` variables behind monkeypatch's back;
    those are removed afterwards, and so are events still spooled (so that a delivery thread still
    retrying has nothing to send into a later test).
    """
    before = {k for k in os.environ if k.startswith("OPENLINEAGE")}
    for name in {*before, *SETTINGS}:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        if name not in before:
            os.environ.pop(name, None)
    spool = LineageSpool(data_dir / "lineage" / "spool")
    spool.delete([event_id for event_id, _ in spool.pending()])


@pytest.fixture
def webhooks():
    inbox = HttpInbox()
    yield inbox
    inbox.close()


@pytest.fixture
def smtp(markers):
    inbox = SmtpInbox(markers["ALERT_SMTP_PASSWORD"])
    yield inbox
    inbox.close()


@pytest.fixture
def lineage_backend():
    with LineageReceiver("ok") as receiver:
        yield receiver


def configure(env, markers: Markers, *, lineage_url: str, webhook_base: str, smtp_port: int, gateway: str):
    """Sets every secret (and its companions) as an operator would before `scripts/dev`."""
    push_host = gateway.split("://", 1)[1]
    env.setenv("OPENLINEAGE_URL", lineage_url)
    env.setenv("OPENLINEAGE_API_KEY", markers["OPENLINEAGE_API_KEY"])
    env.setenv("SLACK_WEBHOOK_URL", f"{webhook_base}/services/T000/B000/{markers['SLACK_WEBHOOK_URL']}")
    env.setenv(
        "PROGRESS_SLACK_WEBHOOK_URL", f"{webhook_base}/progress/{markers['PROGRESS_SLACK_WEBHOOK_URL']}"
    )
    env.setenv("ALERT_SMTP_HOST", "127.0.0.1")
    env.setenv("ALERT_SMTP_PORT", str(smtp_port))
    env.setenv("ALERT_SMTP_USER", SMTP_USER)
    env.setenv("ALERT_SMTP_PASSWORD", markers["ALERT_SMTP_PASSWORD"])
    env.setenv("ALERT_EMAIL_FROM", "dagster@example.com")
    env.setenv("ALERT_EMAIL_TO", "oncall@example.com")
    apprise_host = webhook_base.split("://", 1)[1]
    env.setenv("ALERT_APPRISE_URLS", f"json://{apprise_host}/apprise/{markers['ALERT_APPRISE_URLS']}")
    env.setenv(
        "PROMETHEUS_PUSHGATEWAY_URL",
        f"http://{PUSH_USER}:{markers['PROMETHEUS_PUSHGATEWAY_URL']}@{push_host}",
    )


def evaluate(sensor, instance, run, event, resources=None):
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources=resources or {},
    ) as context:
        if sensor.name in ("run_failure_alerts", "openlineage_run_failed"):
            context = context.for_run_failure()
        return sensor(context)


@dataclass
class Outcome:
    """What one round of runs and sensors left behind, besides files and the event log."""

    texts: dict[str, str] = field(default_factory=dict)
    good_run: str = ""
    bad_run: str = ""
    good_flow: str = ""  # the dataflow's name: its Pushgateway job is hamilton_<name>


def run_flows_and_sensors(make_module, instance) -> Outcome:
    """A successful run (as a job with the alerting resource, like the shipped definitions) and a
    failing one of generated dataflows; then every alert and lineage sensor on them."""
    outcome = Outcome()
    good_module = make_module(GOOD_FLOW)
    outcome.good_flow = good_module.__name__
    good = hamilton_assets(good_module, progress_callbacks=progress_callbacks_from_env("good flow"))
    bad = hamilton_assets(make_module(BAD_FLOW), progress_callbacks=progress_callbacks_from_env("bad flow"))
    job = dg.define_asset_job("secrets_job", selection=[good])
    defs = dg.Definitions(assets=[good], jobs=[job], resources={"alerting": alerting_from_env()})
    succeeded = defs.resolve_job_def("secrets_job").execute_in_process(instance=instance)
    assert succeeded.success
    failed = dg.materialize(
        [bad], instance=instance, raise_on_error=False, resources={"alerting": alerting_from_env()}
    )
    assert not failed.success
    outcome.good_run, outcome.bad_run = succeeded.run_id, failed.run_id
    outcome.texts["step failure"] = step_failure(failed)
    assert "the upstream API refused the request" in outcome.texts["step failure"]

    failure_alerts, notices = alert_sensors(notice_jobs=[job])
    resources = {"alerting": alerting_from_env()}
    bad_run, good_run = instance.get_run_by_id(failed.run_id), instance.get_run_by_id(succeeded.run_id)
    failure = run_event(instance, failed.run_id, dg.DagsterEventType.RUN_FAILURE)
    success = run_event(instance, succeeded.run_id, dg.DagsterEventType.RUN_SUCCESS)
    outcome.texts["failure alert"] = evaluate(
        failure_alerts, instance, bad_run, failure, resources
    ).skip_message
    outcome.texts["success notice"] = evaluate(notices, instance, good_run, success, resources).skip_message
    outcome.texts["lineage run_failed"] = evaluate(
        lineage_runs.run_failed, instance, bad_run, failure
    ).skip_message
    spool_sensor = lineage_runs.deliver_spooled_events(dg.build_sensor_context(instance=instance))
    outcome.texts["lineage spool sensor"] = spool_sensor.skip_message
    return outcome


def deliver_lineage(timeout_s: float = DELIVERY_TIMEOUT_S) -> tuple[int, str | None]:
    """Delivers what is spooled (bounded); returns (still pending, last backend error)."""
    target = lineage_client.delivery()
    deadline = time.monotonic() + timeout_s
    while (pending := target.deliver_pending()[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pending, target.last_error


def received_headers(backend: LineageReceiver) -> dict[str, str]:
    """Lineage request headers other than Authorization, where the key belongs."""
    return {
        f"lineage request {i} header {name}": value
        for i, headers in enumerate(backend.headers)
        for name, value in headers.items()
        if name.lower() != "authorization"
    }


def gateway_exposition(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return response.read().decode()


# -- the scanner finds what it looks for ----------------------------------------------------------


def test_the_scan_finds_a_marker_in_every_kind_of_file(tmp_path, markers):
    """Control: the leak search itself, on files that hide a marker the ways ours could."""
    secret = markers["OPENLINEAGE_API_KEY"]
    (tmp_path / "plain.log").write_text(f"key={secret}")
    db = sqlite3.connect(tmp_path / "runs.db")
    db.execute("CREATE TABLE snapshots (body BLOB)")
    db.execute("INSERT INTO snapshots VALUES (?)", (zlib.compress(json.dumps({"k": secret}).encode()),))
    db.commit()
    db.close()
    with zipfile.ZipFile(tmp_path / "value.bundle.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("entry.json", json.dumps([secret] * 50))
    import pandas as pd

    pd.DataFrame({"c": [secret] * 50}).to_parquet(tmp_path / "value.parquet", compression="gzip")
    auth = base64.b64encode(f"{PUSH_USER}:{markers['PROMETHEUS_PUSHGATEWAY_URL']}".encode()).decode()
    (tmp_path / "header.txt").write_text(f"Authorization: Basic {auth}")

    found = leaks(markers.forms(), file_haystacks(tmp_path))

    for name in ["plain.log", "runs.db", "value.bundle.zip", "value.parquet"]:
        assert any(f"OPENLINEAGE_API_KEY in {tmp_path / name}#" in leak for leak in found), name
    assert any("Basic auth of PROMETHEUS_PUSHGATEWAY_URL" in leak and "header.txt" in leak for leak in found)


# -- generated dataflows: backends up, backends down ------------------------------------------------


@pytest.mark.services  # the Pushgateway
def test_no_secret_leaks_from_runs_alerts_lineage_or_metrics(
    make_module,
    data_dir,
    instance,
    tmp_path,
    markers,
    clean_env,
    lineage_backend,
    webhooks,
    smtp,
    pushgateway,
    caplog,
    capfd,
):
    caplog.set_level(logging.DEBUG)  # openlineage-python, urllib3 and our own debug logs included
    caplog.set_level(logging.WARNING, logger="mail.log")  # the test SMTP server's own AUTH trace
    configure(
        clean_env,
        markers,
        lineage_url=lineage_backend.url,
        webhook_base=webhooks.url,
        smtp_port=smtp.controller.port,
        gateway=pushgateway.url,
    )

    outcome = run_flows_and_sensors(make_module, instance)
    pending, error = deliver_lineage()

    # The secrets were used: the key went in the header, the webhooks and the SMTP login got theirs.
    assert pending == 0, error
    assert lineage_backend.events and {h.get("Authorization") for h in lineage_backend.headers} == {
        f"Bearer {markers['OPENLINEAGE_API_KEY']}"
    }
    assert len(webhooks.bodies(markers["SLACK_WEBHOOK_URL"])) == 2  # failure alert + success notice
    assert webhooks.bodies(markers["PROGRESS_SLACK_WEBHOOK_URL"])  # progress of both runs
    assert len(webhooks.bodies(markers["ALERT_APPRISE_URLS"])) == 2  # the same two, through Apprise
    failure_alert = outcome.texts["failure alert"]
    assert (
        "sent via Slack webhook; sent via e-mail" in failure_alert
        and "; sent via Apprise (json://)" in failure_alert
    )
    assert len(smtp.messages) == 2 and {p for _, p in smtp.logins} == {
        markers["ALERT_SMTP_PASSWORD"].encode()
    }
    exposition = gateway_exposition(pushgateway.url)
    assert f'job="hamilton_{outcome.good_flow}"' in exposition  # pushed, with the credentials
    assert not [e for e in instance.all_logs(outcome.good_run) if "Pushgateway" in (e.user_message or "")]

    haystacks = {
        **file_haystacks(tmp_path),
        **event_log_haystacks(instance),
        **{f"lineage body {i}": body for i, body in enumerate(lineage_backend.bodies)},
        **received_headers(lineage_backend),
        **{f"webhook body {i}": body for i, (_, _, body) in enumerate(webhooks.requests)},
        **{f"e-mail {i}": message for i, message in enumerate(smtp.messages)},
        "pushgateway exposition": exposition,
        **outcome.texts,
        "python logging": caplog.text,
        **dict(zip(["stdout", "stderr"], capfd.readouterr())),
    }
    assert leaks(markers.forms(), haystacks) == []


def test_no_secret_leaks_when_every_backend_is_down(
    make_module,
    data_dir,
    instance,
    tmp_path,
    markers,
    clean_env,
    caplog,
    capfd,
):
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every connection is refused
    configure(clean_env, markers, lineage_url=dead, webhook_base=dead, smtp_port=free_port(), gateway=dead)

    outcome = run_flows_and_sensors(make_module, instance)
    pending, error = lineage_client.delivery().deliver_pending()[1], lineage_client.delivery().last_error

    # Everything failed, and said so.
    assert pending > 0 and error
    assert "NOT delivered via Slack webhook" in outcome.texts["failure alert"]
    assert "NOT delivered via e-mail" in outcome.texts["failure alert"]
    assert "backend error" in outcome.texts["lineage spool sensor"]
    warnings = [
        e.user_message for e in instance.all_logs(outcome.good_run) if "Pushgateway" in (e.user_message or "")
    ]
    assert (
        len(warnings) == 1
        and f"Pushgateway at {dead} (PROMETHEUS_PUSHGATEWAY_URL or the runtime's pushgateway_url):"
        in warnings[0]
    )

    haystacks = {
        **file_haystacks(tmp_path),
        **event_log_haystacks(instance),
        **outcome.texts,
        "last lineage error": error,
        "python logging": caplog.text,
        **dict(zip(["stdout", "stderr"], capfd.readouterr())),
    }
    assert leaks(markers.forms(), haystacks) == []


# -- misconfigured secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "SLACK_WEBHOOK_URL",
        "PROGRESS_SLACK_WEBHOOK_URL",
    ],
)
def test_a_webhook_url_without_a_scheme_is_never_shown(
    variable,
    make_module,
    data_dir,
    instance,
    tmp_path,
    markers,
    clean_env,
    caplog,
    capfd,
):
    caplog.set_level(logging.DEBUG)
    clean_env.setenv("OPENLINEAGE_DISABLED", "true")
    clean_env.setenv(variable, f"hooks.slack.invalid/services/T000/B000/{markers[variable]}")

    outcome = run_flows_and_sensors(make_module, instance)

    if variable == "SLACK_WEBHOOK_URL":
        assert "NOT delivered via Slack webhook" in outcome.texts["failure alert"]
    haystacks = {
        **file_haystacks(tmp_path),
        **event_log_haystacks(instance),
        **outcome.texts,
        "python logging": caplog.text,
        **dict(zip(["stdout", "stderr"], capfd.readouterr())),
    }
    assert leaks({variable: markers[variable].encode()}, haystacks) == []


def test_a_pushgateway_password_with_reserved_characters_is_never_shown(
    make_module,
    data_dir,
    instance,
    tmp_path,
    markers,
    clean_env,
    caplog,
    capfd,
):
    caplog.set_level(logging.DEBUG)
    clean_env.setenv("OPENLINEAGE_DISABLED", "true")
    first, second = markers["PROMETHEUS_PUSHGATEWAY_URL"], uuid.uuid4().hex
    clean_env.setenv(
        "PROMETHEUS_PUSHGATEWAY_URL", f"http://{PUSH_USER}:{first}#{second}@127.0.0.1:{free_port()}"
    )

    result = dg.materialize([hamilton_assets(make_module(GOOD_FLOW))], instance=instance)

    assert result.success
    haystacks = {
        **file_haystacks(tmp_path),
        **event_log_haystacks(instance),
        "python logging": caplog.text,
        **dict(zip(["stdout", "stderr"], capfd.readouterr())),
    }
    assert (
        leaks({"password (first part)": first.encode(), "password (second part)": second.encode()}, haystacks)
        == []
    )


# -- the shipped dataflows, through the CLI ---------------------------------------------------------


@pytest.mark.services  # the Pushgateway, `dagster asset materialize`
def test_the_shipped_dataflows_through_the_cli_leak_no_secret(
    tmp_path,
    data_dir,
    markers,
    clean_env,
    lineage_backend,
    webhooks,
    smtp,
    pushgateway,
    caplog,
    capfd,
):
    """`dagster asset materialize -m orchestration.definitions` in its own process, as an operator
    runs it: the ML dataflow succeeds, a day of sales with a non-UTF-8 file fails (after the shipped
    retries); then the failure alert and lineage sensors run on that instance."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="mail.log")
    configure(
        clean_env,
        markers,
        lineage_url=lineage_backend.url,
        webhook_base=webhooks.url,
        smtp_port=smtp.controller.port,
        gateway=pushgateway.url,
    )
    home = tmp_path / "cli_home"
    home.mkdir()
    landing = data_dir / "landing"
    write_sample_sales(landing, days=3, rows_per_day=30, start="2026-01-01")
    bad_day = landing / "sales_2026-01-03.csv"
    bad_day.write_bytes(bad_day.read_text().replace("North", "M\xfcnchen").encode("latin-1"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE__")},
        "DAGSTER_HOME": str(home),
        "HAMILTON_TELEMETRY_ENABLED": "false",
        "PIPELINE_PROGRESS_BAR": "0",
    }
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent))
    outputs = {}
    for name, selection in [
        ("ml", ["--select", "group:ml_pipeline"]),
        ("sales", ["--select", "group:sales_analytics", "--partition", "2026-01-03"]),
    ]:
        done = subprocess.run(
            [dagster, "asset", "materialize", "-m", "orchestration.definitions", *selection],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        outputs[f"cli {name} stdout"], outputs[f"cli {name} stderr"] = done.stdout, done.stderr
        assert (done.returncode == 0) == (name == "ml"), done.stdout[-3000:] + done.stderr[-3000:]

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = {run.status for run in instance.get_runs()}
        assert runs == {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        [failed] = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        failure = run_event(instance, failed.run_id, dg.DagsterEventType.RUN_FAILURE)
        [failure_alerts] = alert_sensors()
        texts = {
            "failure alert": evaluate(
                failure_alerts, instance, failed, failure, {"alerting": alerting_from_env()}
            ).skip_message,
            "lineage run_failed": evaluate(lineage_runs.run_failed, instance, failed, failure).skip_message,
        }
        pending, error = deliver_lineage()
        events = event_log_haystacks(instance)
        step_errors = " ".join(text for text in events.values() if "STEP_FAILURE" in text)

    assert (
        "is not UTF-8" in step_errors and "sent via Slack webhook; sent via e-mail" in texts["failure alert"]
    )
    assert pending == 0, error
    assert lineage_backend.events and {h.get("Authorization") for h in lineage_backend.headers} == {
        f"Bearer {markers['OPENLINEAGE_API_KEY']}"
    }
    assert webhooks.bodies(markers["PROGRESS_SLACK_WEBHOOK_URL"]) and webhooks.bodies(
        markers["SLACK_WEBHOOK_URL"]
    )
    assert {p for _, p in smtp.logins} == {markers["ALERT_SMTP_PASSWORD"].encode()}
    exposition = gateway_exposition(pushgateway.url)
    assert 'job="hamilton_ml_pipeline"' in exposition

    haystacks = {
        **file_haystacks(tmp_path),
        **events,
        **outputs,
        **texts,
        **{f"lineage body {i}": body for i, body in enumerate(lineage_backend.bodies)},
        **received_headers(lineage_backend),
        **{f"webhook body {i}": body for i, (_, _, body) in enumerate(webhooks.requests)},
        **{f"e-mail {i}": message for i, message in enumerate(smtp.messages)},
        "pushgateway exposition": exposition,
        "python logging": caplog.text,
        **dict(zip(["stdout", "stderr"], capfd.readouterr())),
    }
    assert leaks(markers.forms(), haystacks) == []


# -- the UI listens on loopback by default --------------------------------------------------------


def fake_checkout(tmp_path: Path) -> Path:
    """scripts/dev copied into a checkout whose install step, `python` and `dagster` only record
    their arguments: the script's own logic runs for real, nothing is installed or started."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / ".venv" / "bin").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "dev", checkout / "scripts" / "dev")
    (checkout / "scripts" / "install").write_text("#!/usr/bin/env bash\nexit 0\n")
    (checkout / ".venv" / "bin" / "dagster").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    (checkout / ".venv" / "bin" / "python").write_text(
        '#!/usr/bin/env bash\necho "$@" >> "$(dirname "$0")/python.calls"\n'
    )
    for script in [checkout / "scripts" / "install", *(checkout / ".venv" / "bin").iterdir()]:
        script.chmod(0o755)
    return checkout


def dev_arguments(checkout: Path, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    done = subprocess.run(
        [str(checkout / "scripts" / "dev")],
        env={**base, "PIPELINE_DATA_DIR": str(checkout / "data"), **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.services  # scripts/dev (with `dagster` stubbed)
def test_scripts_dev_serves_the_ui_on_loopback_unless_told_otherwise(tmp_path):
    checkout = fake_checkout(tmp_path)

    arguments = dev_arguments(checkout)

    assert arguments[0] == "dev"
    host = arguments[arguments.index("-h") + 1]
    assert host == "127.0.0.1"
    assert arguments.count("-h") == 1 and not any(re.fullmatch(r"--host(=.*)?", a) for a in arguments)
    assert dev_arguments(checkout, DAGSTER_HOST="0.0.0.0")[arguments.index("-h") + 1] == "0.0.0.0"
    # the sample week is written by scripts/dev (once per missing landing folder), not at definitions load
    calls = (checkout / ".venv" / "bin" / "python.calls").read_text().splitlines()
    assert (
        calls == [f"-m hamilton_pipelines.sample_data {checkout / 'data' / 'landing'} --start 2026-01-01"] * 2
    )
