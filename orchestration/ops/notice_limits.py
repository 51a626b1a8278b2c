"""Rate limits for notices that can come in bursts (retries, stale assets), so a flapping step or a
hundred stale assets cannot flood a channel.

Two rules, both per sensor:

- one notice per (kind, subject) per `repeat_s`: a step retried in run after run is announced once
  in that time, later ones are dropped (the run-failure alert still reports a run that fails);
- one message per tick: when several notices pass in one tick they go out as one digest listing
  the first `DIGEST_LINES` and "and N more".

When each (kind, subject) was last announced lives in the sensor's cursor (`sent`), which Dagster
stores in the instance, so the limit holds across daemon restarts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REPEAT_VARIABLE = "NOTICE_REPEAT_MIN"
DEFAULT_REPEAT_MIN = 30
DIGEST_LINES = 10


@dataclass(frozen=True)
class Notice:
    """One thing to tell a person: `subject` and `body` when sent alone, `line` in a digest."""

    kind: str  # e.g. "retry", "freshness FAIL"
    about: str  # what it is about: a job's step, an asset
    subject: str
    body: str
    line: str

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.about}"


def repeat_seconds_from_env() -> int:
    """`$NOTICE_REPEAT_MIN` in seconds: minutes before the same notice about the same step or asset
    may be sent again (default 30; 0 sends every one)."""
    value = os.environ.get(REPEAT_VARIABLE, "").strip() or str(DEFAULT_REPEAT_MIN)
    if not value.isdigit():
        raise ValueError(f"{REPEAT_VARIABLE}={value!r}: give a whole number of minutes, 0 or more.")
    return int(value) * 60


def admit(
    notices: Sequence[Notice], sent: Mapping[str, float], now: float, repeat_s: float
) -> tuple[list[Notice], dict[str, float]]:
    """The notices that may go out now (each key at most once), and `sent` updated with them and
    cleared of keys whose quiet time is over (so a cursor stays small)."""
    still_quiet = {key: at for key, at in sent.items() if now - at < repeat_s}
    admitted = []
    for notice in notices:
        if notice.key not in still_quiet:
            admitted.append(notice)
            if repeat_s > 0:
                still_quiet[notice.key] = now
    return admitted, still_quiet


def one_message(notices: Sequence[Notice], what: str) -> tuple[str, str]:
    """(subject, body): a single notice as it is, several as one digest of `what` (e.g. "retry
    notices") that lists the first `DIGEST_LINES` and counts the rest."""
    if len(notices) == 1:
        return notices[0].subject, notices[0].body
    lines = [f"- {notice.line}" for notice in notices[:DIGEST_LINES]]
    if len(notices) > DIGEST_LINES:
        lines.append(f"… and {len(notices) - DIGEST_LINES} more")
    return f"[dagster] {len(notices)} {what}", "\n".join(lines)
