"""Where messages for people go: Slack, e-mail and any Apprise URL, as Dagster resources.

Secrets come from the environment through `dg.EnvVar`, so the UI shows the variable's name, never
its value; messages and errors never contain them either. Alerts (`ops.alerts`) and progress
messages (`monitoring.slack_progress`) both send through these.

Slack and e-mail keep their own small clients: Apprise's Slack plugin posts only to
hooks.slack.com (a webhook URL on any other host is refused as unparseable), and the SMTP settings
are separate variables today. `AppriseNotifier` reaches everything else (Teams, PagerDuty, JSON
webhooks, ...) from one URL per destination; see docs/operations.md for the reasons.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import re
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage

import dagster as dg

from orchestration.errors import NotDelivered
from orchestration.extras import require

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


# Apprise logs each URL it loads and posts to, tokens included, at DEBUG (and urllib3 logs the
# request path): while it sends, records on these loggers have the URL's parts masked.
APPRISE_LOGGERS = ("apprise", "urllib3.connectionpool")
MASK = "***"


def apprise_urls(value: str) -> list[str]:
    """The URLs in `value`, separated by whitespace or commas (Apprise's own convention)."""
    return [url for url in re.split(r"[\s,]+", value) if url]


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "?"


def url_parts(url: str) -> list[str]:
    """Every piece of `url` that may be a secret: user, password, host, path segments, query
    values; as written and percent-decoded, longest first (so a part is masked whole)."""
    rest = url.split("://", 1)[-1]
    pieces = set(re.split(r"[/:@?&=#]+", rest))
    pieces |= {urllib.parse.unquote(piece) for piece in pieces}
    return sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True)


class _Masking(logging.Filter):
    """Masks `parts` in every record it sees and keeps the warnings, already masked."""

    def __init__(self, parts: list[str]):
        super().__init__()
        self.parts = parts
        self.warnings: list[str] = []

    def mask(self, text: str) -> str:
        for part in self.parts:
            text = text.replace(part, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.msg)
        return True


@contextlib.contextmanager
def _masked_logs(url: str) -> Iterator[_Masking]:
    masking = _Masking(url_parts(url))
    loggers = [logging.getLogger(name) for name in APPRISE_LOGGERS]
    for logger in loggers:
        logger.addFilter(masking)
    try:
        yield masking
    finally:
        for logger in loggers:
            logger.removeFilter(masking)


def _apprise():
    return require("alerts", "apprise", "ALERT_APPRISE_URLS (alerts through Apprise)")


def unusable_apprise_urls(value: str) -> list[str]:
    """`#position (scheme)` of each URL in `value` that Apprise cannot send to (an unknown scheme,
    a malformed URL); empty when all are usable. Names no more of a URL than its scheme."""
    apprise = _apprise()
    unusable = []
    for position, url in enumerate(apprise_urls(value), 1):
        with _masked_logs(url):
            usable = apprise.Apprise().add(url)
        if not usable:
            unusable.append(f"#{position} ({scheme_of(url)}://)")
    return unusable


class AppriseNotifier(Notifier):
    """Any destination Apprise supports, one URL each (`msteams://…`, `pagerduty://…`,
    `json://host:port/path`, …): https://appriseit.com/services/."""

    urls: str  # whitespace- or comma-separated; the tokens in them are secrets

    def send(self, subject: str, body: str) -> None:
        """Sends to each URL in turn; one that fails does not stop the next."""
        failures = [
            failure
            for position, url in enumerate(apprise_urls(self.urls), 1)
            if (failure := self._send_to(position, url, subject, body))
        ]
        if failures:
            raise NotDelivered("; ".join(failures))

    @staticmethod
    def _send_to(position: int, url: str, subject: str, body: str) -> str | None:
        """None when delivered, else why not: Apprise's own warnings, with the URL masked."""
        apprise = _apprise()
        with _masked_logs(url) as masking:
            target = apprise.Apprise()
            sent = target.add(url) and target.notify(
                title=subject, body=body, body_format=apprise.NotifyFormat.TEXT
            )
        if sent:
            return None
        why = " ".join(masking.warnings) or "refused"
        return f"#{position} ({scheme_of(url)}://): {why}"

    def describe(self) -> str:
        schemes = ", ".join(f"{scheme_of(url)}://" for url in apprise_urls(self.urls))
        return f"Apprise ({schemes})"
