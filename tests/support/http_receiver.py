"""A real local OpenLineage HTTP backend for tests: `POST /api/v1/lineage` like Marquez.

`LineageReceiver` runs a stdlib `ThreadingHTTPServer` in a thread on 127.0.0.1 and can be switched
between modes while it runs:

- "ok":     answers 201 and records the event (body, parsed JSON and request headers);
- "500":    reads the request and answers 500 (counted in `rejected`, not recorded);
- "hang":   reads the request and never answers until the mode changes or the server stops;
            the held connection is then closed without an answer (nothing recorded), as a backend
            that stalled and dropped its connections would;
- "refuse": nothing listens on the port (the listening socket is closed); `set_mode` to any other
            mode listens on the same port again.

Everything the handler threads record is guarded by one lock; `wait_for` polls with a deadline.
`close()` never waits on a hanging request: it releases them first.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port

MODES = ("ok", "500", "hang", "refuse")
ENDPOINT = "/api/v1/lineage"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler left hanging never keeps the test process alive
    allow_reuse_address = True  # listen again on the same port right after closing it
    receiver: LineageReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        mode = receiver.mode
        if mode == "hang":
            receiver._hold(self)
            self.close_connection = True
            return  # the connection closes with no answer
        if self.path.rstrip("/") != ENDPOINT:
            self._answer(404, b'{"error": "not found"}')
            return
        if mode == "500":
            receiver._reject()
            self._answer(500, b'{"error": "backend is failing"}')
            return
        try:
            event = json.loads(body)
        except ValueError:
            self._answer(400, b'{"error": "not JSON"}')
            return
        receiver._record(body, event, dict(self.headers.items()))
        self._answer(201, b"")

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
        pass


class LineageReceiver:
    """A switchable OpenLineage HTTP backend on 127.0.0.1 (see the module docstring)."""

    def __init__(self, mode: str = "ok", port: int = 0):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._bodies: list[bytes] = []
        self._events: list[dict] = []
        self._headers: list[dict[str, str]] = []
        self._rejected = 0
        self._held = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._mode = "refuse"
        self.port = port or free_port()
        self.set_mode(mode)

    # -- state --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @property
    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    @property
    def bodies(self) -> list[bytes]:
        with self._lock:
            return list(self._bodies)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def rejected(self) -> int:
        """Requests answered 500."""
        with self._lock:
            return self._rejected

    @property
    def held(self) -> int:
        """Requests that were (or are being) held without an answer in "hang" mode."""
        with self._lock:
            return self._held

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._changed:
            self._mode = mode
            self._changed.notify_all()  # releases held requests when leaving "hang"
        if mode == "refuse":
            self._stop_listening()
        else:
            self._listen()

    def wait_for(self, count: int, timeout_s: float) -> list[dict]:
        """Waits (bounded) until at least `count` events were recorded; returns them all."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.1))
            return list(self._events)

    def close(self) -> None:
        with self._changed:
            self._mode = "refuse"
            self._changed.notify_all()
        self._stop_listening()

    def __enter__(self) -> LineageReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- called from handler threads -------------------------------------------------------------

    def _record(self, body: bytes, event: dict, headers: dict[str, str]) -> None:
        with self._changed:
            self._bodies.append(body)
            self._events.append(event)
            self._headers.append(headers)
            self._changed.notify_all()

    def _reject(self) -> None:
        with self._lock:
            self._rejected += 1

    def _hold(self, handler: _Handler) -> None:
        with self._changed:
            self._held += 1
            while self._mode == "hang" and self._server is not None:
                self._changed.wait(0.1)

    # -- the server -------------------------------------------------------------------------------

    def _listen(self) -> None:
        if self._server is not None:
            return
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:  # the port is still being released
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.receiver = self
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lineage-receiver-{self.port}",
            daemon=True,
        )
        thread.start()
        with self._lock:
            self._server, self._thread = server, thread

    def _stop_listening(self) -> None:
        with self._changed:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._changed.notify_all()  # held requests see no server and let go
        if server is not None:
            server.shutdown()  # stops accepting; handler threads are daemons and not joined
            server.server_close()
            thread.join(timeout=5)
