"""OpenLineage delivery that never slows a run and never loses an event.

Each event is first written to a spool folder (one file per event, named so that sorting gives
emission order, written to a temporary name and renamed, so a killed process leaves whole files
only). A background thread then sends spooled events oldest first through the transport that
openlineage-python's own configuration selects, deleting each once the backend has accepted it.
When the backend refuses, hangs or answers 5xx, delivery pauses with backoff and the events stay
spooled; whoever delivers next — a later run, the lineage sensor, or
`python -m orchestration.lineage flush` — sends them in order. Delivery is at-least-once:
runIds are deterministic, so a repeated event is harmless.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openlineage.client.serde import Serde

logger = logging.getLogger(__name__)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_counter = itertools.count()


class LineageSpool:
    """Events waiting for delivery, one JSON file each, in emission order."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def put(self, payload: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(_counter):08d}.json"
        temporary = self.folder / f".{name}.tmp"
        temporary.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.folder / name)
        return self.folder / name

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.pending())

    def claim(self, name: str, note: str = "") -> bool:
        """True once per name across all processes sharing the spool (e.g. one START per run)."""
        path = self.folder / "claims" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as file:
            file.write(note)
        return True


class LineageDelivery:
    """Spools events at once and sends them from a background thread."""

    def __init__(self, spool: LineageSpool, transport: Callable[[], Any]):
        self.spool = spool
        self._transport_factory = transport
        self._transport = None
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self.last_error: str | None = None

    def emit(self, event: Any) -> None:
        """Never raises and never blocks on the network."""
        try:
            self.spool.put(Serde.to_dict(event))
        except Exception:  # lineage must never break a run; the message says what was lost
            logger.warning("OpenLineage event could not be spooled in %s", self.spool.folder, exc_info=True)
            return
        self._idle.clear()
        self._start()
        self._wake.set()

    def wait(self, timeout_s: float) -> bool:
        """Waits up to `timeout_s` for the spool to drain; True if it did."""
        if self._thread is None:
            return not self.spool.pending()
        return self._idle.wait(timeout_s) and not self.spool.pending()

    def deliver_pending(self) -> tuple[int, int]:
        """Sends what is spooled, in order, in this thread; returns (sent, still pending)."""
        sent = 0
        lock_path = self.spool.folder / ".deliver.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is delivering; it keeps the order
                return 0, len(self.spool.pending())
            try:
                for path in self.spool.pending():
                    try:
                        payload = json.loads(path.read_text(encoding="utf-8"))
                    except FileNotFoundError:
                        continue
                    except ValueError:
                        path.rename(path.with_suffix(".unreadable"))
                        logger.warning("Set aside unreadable spooled lineage event %s", path)
                        continue
                    self._send(payload)
                    path.unlink(missing_ok=True)
                    sent += 1
            except Exception as error:  # backend down, slow or 5xx: keep the rest spooled
                self.last_error = f"{type(error).__name__}: {error}"
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return sent, len(self.spool.pending())

    def _send(self, payload: dict[str, Any]) -> None:
        if self._transport is None:
            self._transport = self._transport_factory()
        if self._transport is not None:
            self._transport.emit(payload)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="openlineage-delivery", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.last_error = None
            _, pending = self.deliver_pending()
            if pending == 0:
                self._failures = 0
                self._idle.set()
                continue
            if self.last_error:
                delay = BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
                self._failures += 1
                logger.warning(
                    "OpenLineage backend unavailable (%s); %d event(s) kept in %s, retrying in %.1f s",
                    self.last_error, pending, self.spool.folder, delay,
                )
            else:
                delay = 0.2  # another process holds the delivery lock
            self._idle.set()  # nothing more this process can do right now
            time.sleep(delay)
            self._idle.clear()
            self._wake.set()
