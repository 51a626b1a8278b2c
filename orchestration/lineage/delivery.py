"""OpenLineage delivery that never slows a run and never loses an event.

Each event is first appended to a spool — a SQLite database in WAL mode, shared by every process
on the machine, so a killed process loses nothing it had emitted — and a background thread sends
spooled events oldest first through the transport that openlineage-python's own configuration
selects, deleting each once the backend has accepted it. When the backend refuses, hangs or
answers 5xx, delivery backs off and the events stay spooled; whoever delivers next — a later run,
the lineage sensor, or `python -m orchestration.lineage.cli flush` — sends them in order. An event
the backend rejects as invalid (4xx) is set aside, so it cannot hold up the others. Delivery is
at-least-once: runIds are deterministic, so a repeated event is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from openlineage.client.serde import Serde

logger = logging.getLogger(__name__)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
RETRYABLE_STATUS = {401, 403, 408, 429}
BATCH_WAIT_S = 1.0  # while the backend accepts events, they go out in rounds at most this often
FIRST_WAIT_S = 0.02  # until it has accepted one: try soon, so a short run learns it is up
BATCH_SIZE = 500  # events read from the spool at a time
CLOSE_WAIT_S = 2.0  # `close` waits this long for a round in progress
BUSY = "another process is delivering the spooled events right now"
DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}  # primary result codes of a damaged file
T = TypeVar("T")
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, reason TEXT NOT NULL);
"""


class LineageSpool:
    """Events waiting for delivery, in emission order, plus claims that make events unique.

    A damaged database (a disk error, a truncated or overwritten file) is set aside for
    inspection, with its `-wal` and `-shm`, and a new spool starts (`_set_aside`): runs go on and
    lineage flows again, at the cost of what the damaged file held (docs/reliability.md).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "spool.db"
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid() and self._same_file():
            return connection
        self.folder.mkdir(parents=True, exist_ok=True)
        # One process at a time: two switching a new file to WAL at once get "database is locked"
        # without SQLite's busy wait, and none may pair a new `spool.db` with a `-wal` being set aside.
        with self._folder_lock():
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL: safe against process crashes
            connection.executescript(SCHEMA)
            self._local.inode = os.stat(self.path).st_ino
        self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[None]:
        """Held while a process opens the spool or sets a damaged one aside (a file lock)."""
        with open(self.folder / ".spool.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _same_file(self) -> bool:
        """Whether `spool.db` is still the file this thread opened (another process may have set a
        damaged one aside): a stat, so a process never writes into the file kept for inspection."""
        try:
            return os.stat(self.path).st_ino == self._local.inode
        except FileNotFoundError:
            return False

    def _use(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on this thread's connection; once more on a new spool if the database is damaged."""
        try:
            return work(self._db())
        except sqlite3.DatabaseError as error:
            if (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF not in DAMAGED_CODES:
                raise
            self._set_aside(error)
            return work(self._db())

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        """Moves the damaged database aside as `spool.db.damaged-<time>` (with its -wal and -shm),
        once however many processes find it damaged at the same moment: under a file lock, the
        first renames it; the others then find a healthy `spool.db` and only reconnect."""
        self._forget_connection()
        with self._folder_lock():
            if not self._damaged():
                return
            kept = self.folder / f"spool.db.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}{suffix}", f"{kept}{suffix}")
            logger.warning(
                "The OpenLineage spool %s is damaged (%s) and was set aside as %s for inspection; "
                "a new spool starts and lineage goes on. The events it held are not delivered, and "
                "runs in progress may send a START or an end event a second time.",
                self.path,
                error,
                kept,
            )

    def _damaged(self) -> bool:
        """Whether `spool.db` as it is now cannot be read (a fresh connection, not this thread's)."""
        if not self.path.exists():
            return False
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as probe:
                probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                probe.execute("PRAGMA quick_check").fetchall()
            return False
        except sqlite3.DatabaseError as error:
            return (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF in DAMAGED_CODES

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def put(self, payload: dict[str, Any], claim: str | None = None, note: str = "") -> bool:
        """Spools the event; with `claim`, only if nobody claimed that name before (one commit)."""
        return self.put_all([(payload, claim, note)]) == 1

    def put_all(self, items: list[tuple[dict[str, Any], str | None, str]]) -> int:
        """Spools (event, claim, note) items in one commit, each claimed one only if nobody claimed
        its name before; returns how many were spooled."""
        rows = [(json.dumps(payload), claim, note) for payload, claim, note in items]

        def put(db: sqlite3.Connection) -> int:
            spooled = 0
            with db:
                db.execute("BEGIN IMMEDIATE")
                for payload, claim, note in rows:
                    if (
                        claim is not None
                        and not db.execute(
                            "INSERT OR IGNORE INTO claims (name, note) VALUES (?, ?)", (claim, note)
                        ).rowcount
                    ):
                        continue
                    db.execute("INSERT INTO events (payload) VALUES (?)", (payload,))
                    spooled += 1
            return spooled

        return self._use(put)

    def pending(self, limit: int | None = None) -> list[tuple[int, dict]]:
        """(id, event) in emission order."""
        if not self.path.exists():
            return []
        rows = self._use(
            lambda db: db.execute(
                "SELECT id, payload FROM events ORDER BY id LIMIT ?", (-1 if limit is None else limit,)
            ).fetchall()
        )
        return [(row_id, json.loads(payload)) for row_id, payload in rows]

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return self._use(lambda db: db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def delete(self, event_ids: list[int]) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in event_ids])

        if event_ids:
            self._use(delete)

    def reject(self, event_id: int, reason: str) -> None:
        def reject(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT OR REPLACE INTO rejected SELECT id, payload, ? FROM events WHERE id = ?",
                    (reason, event_id),
                )
                db.execute("DELETE FROM events WHERE id = ?", (event_id,))

        self._use(reject)

    def claim(self, name: str, note: str = "") -> bool:
        """True once per name across all processes sharing the spool (e.g. one START per run)."""
        return self._use(
            lambda db: (
                db.execute("INSERT OR IGNORE INTO claims (name, note) VALUES (?, ?)", (name, note)).rowcount
                == 1
            )
        )

    def claims(self, prefix: str) -> dict[str, str]:
        """Claims whose name starts with `prefix`, with their notes."""
        if not self.path.exists():
            return {}
        return self._use(
            lambda db: dict(
                db.execute(
                    "SELECT name, note FROM claims WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
                ).fetchall()
            )
        )


class LineageDelivery:
    """Spools events at once and sends them from a background thread."""

    def __init__(self, spool: LineageSpool, transport: Callable[[], Any]):
        self.spool = spool
        self._transport_factory = transport
        self._transport = None
        self._wake = threading.Event()
        self._hurry = threading.Event()  # a step is ending: send now, no batching wait
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._failures = 0
        self.in_flight_since: float | None = None
        self.last_error: str | None = None
        self.healthy = False  # the last send succeeded; only then is waiting for delivery worth it

    def emit(self, event: Any, claim: str | None = None, note: str = "") -> None:
        """Never raises and never blocks on the network; with `claim`, emits at most once."""
        self.emit_all([(event, claim, note)])

    def emit_all(self, items: list[tuple[Any, str | None, str]]) -> None:
        """`emit` for several (event, claim, note) items, durable together in one commit; an
        event is an openlineage-python event or one already serialized (a dict)."""
        try:
            payloads = [
                (e if isinstance(e, dict) else Serde.to_dict(e), claim, note) for e, claim, note in items
            ]
            if not self.spool.put_all(payloads):
                return
        except Exception:  # lineage must never break a run; the warning says what was lost
            logger.warning("OpenLineage event could not be spooled in %s", self.spool.path, exc_info=True)
            return
        self._start()
        self._wake.set()

    def drain(self, timeout_s: float, stuck_s: float = 0.05) -> None:
        """Waits up to `timeout_s` while the backend keeps accepting events, or while another
        process is delivering (this one takes over when it is done, so a process ending right after
        does not leave its last events behind); returns at once when the backend has not yet
        accepted one, is failing, or one send has taken longer than `stuck_s`."""
        deadline = time.monotonic() + timeout_s
        self._hurry.set()
        with self._progress:
            while (
                (self.last_error == BUSY or (self.healthy and not self.last_error))
                and len(self.spool)
                and time.monotonic() < deadline
            ):
                started = self.in_flight_since
                if started is not None and time.monotonic() - started > stuck_s:
                    return
                self._progress.wait(min(stuck_s, max(0.0, deadline - time.monotonic())))

    def flush(self, timeout_s: float) -> int:
        """Sends what is spooled, waiting at most `timeout_s` (a hung backend cannot hold the
        caller longer) and returning at the first failure; returns how many events are left."""
        if not len(self.spool):
            return 0
        sender = threading.Thread(
            target=self.deliver_pending, args=(timeout_s,), name="openlineage-flush", daemon=True
        )
        try:
            sender.start()
        except RuntimeError:  # at interpreter shutdown Python 3.12+ starts no thread: send from here,
            self.deliver_pending(timeout_s)  # then bounded by the transport's own timeout instead
            return len(self.spool)
        sender.join(timeout_s)
        return len(self.spool)

    def deliver_pending(self, wait_for_lock_s: float = 0.0) -> tuple[int, int]:
        """Sends what is spooled, in order, in this thread; returns (sent, still pending)."""
        lock_path = self.spool.folder / ".deliver.lock"
        if not lock_path.parent.is_dir():
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock_file:
            if not _lock(lock_file, wait_for_lock_s):
                self.last_error = BUSY
                return 0, len(self.spool)
            try:
                return self._deliver_locked(), len(self.spool)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _deliver_locked(self) -> int:
        sent = 0
        self.last_error = None
        try:
            transport = self._transport or self._transport_factory()
            self._transport = transport
            # Until the backend takes an event, one at a time: a dead backend costs a one-row read per try.
            while batch := self.spool.pending(limit=BATCH_SIZE if self.healthy else 1):
                delivered = []
                try:
                    for event_id, payload in batch:
                        self.in_flight_since = time.monotonic()
                        try:
                            if transport is not None:
                                transport.emit(payload)
                            delivered.append(event_id)
                            self.healthy = True
                        except Exception as error:
                            status = getattr(getattr(error, "response", None), "status_code", None)
                            if status is None or status >= 500 or status in RETRYABLE_STATUS:
                                raise
                            self.spool.reject(event_id, f"HTTP {status}: {error}")
                            logger.warning(
                                "OpenLineage backend rejected event %d (HTTP %s); set aside", event_id, status
                            )
                        finally:
                            self.in_flight_since = None
                finally:  # what was sent leaves the spool, even when a later event failed
                    self.spool.delete(delivered)
                    sent += len(delivered)
                    with self._progress:
                        self._progress.notify_all()
        except Exception as error:  # backend down, slow or misconfigured: keep the rest spooled
            self.healthy = False
            self.last_error = f"{type(error).__name__}: {error}"
            with self._progress:
                self._progress.notify_all()
        return sent

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Stops the background thread after its current round, waiting at most `timeout_s`;
        what is still spooled stays for the next process or `flush`. True when it stopped."""
        self._closed.set()
        self._hurry.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning(
                    "OpenLineage delivery still busy after %.1f s (%s); left to finish on its own",
                    timeout_s,
                    self.last_error or "sending",
                )
                return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="openlineage-delivery", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            if self._closed.is_set():
                return
            # Let the events of the next second gather, then send them in one round: one spool
            # read and one delete per round, not per event, and the delivery thread takes the
            # GIL from the run about once a second. `drain` cuts the wait short.
            self._hurry.wait(BATCH_WAIT_S if self.healthy else FIRST_WAIT_S)
            self._hurry.clear()
            self._wake.clear()
            _, pending = self.deliver_pending()
            if self.last_error == BUSY:  # another process (or a flush) is sending; `drain` now knows.
                # Take over once it is done, for what was spooled after its last read.
                _, pending = self.deliver_pending(BATCH_WAIT_S)
            if pending == 0:
                self._failures = 0
                continue
            if self.last_error == BUSY:
                self._wake.set()
                continue
            delay = BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]
            self._failures += 1
            logger.warning(
                "OpenLineage events not delivered (%s); %d kept in %s, retrying in %.1f s",
                self.last_error,
                pending,
                self.spool.path,
                delay,
            )
            self._closed.wait(delay)
            self._wake.set()


def _lock(lock_file, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
