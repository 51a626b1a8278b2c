"""A server that is up but hung: it accepts connections and never says a word."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """(host, port) of a TCP server on loopback that accepts every connection and never sends a
    byte: a hung SMTP server sends no greeting, a hung web server or Pushgateway no answer. The
    connections are held open until the block ends, so clients wait for their own timeouts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)  # lets the accepting thread notice the end of the block
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        sock.close()
