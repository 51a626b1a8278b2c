"""Where messages for people go: Slack and e-mail, as Dagster resources.

Secrets come from the environment through `dg.EnvVar`, so the UI shows the variable's name, never
its value; messages and errors never contain them either. Alerts (`ops.alerts`) and progress
messages (`monitoring.slack_progress`) both send through these.
"""

from __future__ import annotations

import abc
import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

import dagster as dg

from orchestration.errors import NotDelivered

TIMEOUT_S = 10


def _without_url(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTPError: {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"URLError: {error.reason}"
    return type(error).__name__  # e.g. ValueError("unknown url type: '<the URL>'")


class Notifier(dg.ConfigurableResource):
    """Sends one message somewhere; `describe()` names the target without secrets."""

    @abc.abstractmethod
    def send(self, subject: str, body: str) -> None: ...

    def describe(self) -> str:
        return type(self).__name__


class SlackWebhook(Notifier):
    url: str

    def send(self, subject: str, body: str, timeout_s: float = TIMEOUT_S) -> None:
        try:
            request = urllib.request.Request(
                self.url,
                data=json.dumps({"text": f"*{subject}*\n{body}"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
        except Exception as error:  # noqa: BLE001 - its text may hold the URL, which is the secret
            timed_out = isinstance(error, TimeoutError) or isinstance(
                getattr(error, "reason", None), TimeoutError
            )
            raise NotDelivered(_without_url(error), timed_out) from None

    def describe(self) -> str:
        return "Slack webhook"


class SmtpEmail(Notifier):
    host: str
    port: int = 25
    sender: str
    recipients: str  # comma-separated
    user: str | None = None
    password: str | None = None
    starttls: bool = False

    def send(self, subject: str, body: str) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = self.recipients
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:  # socket and SMTP errors carry no password
            # e.g. "SMTPServerDisconnected: Connection unexpectedly closed: timed out" for a hung server
            raise NotDelivered(f"{type(error).__name__}: {error}") from None

    def describe(self) -> str:
        return f"e-mail via {self.host}:{self.port}"
