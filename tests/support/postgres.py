"""A real PostgreSQL server (Debian's `postgresql` package) for tests: a fresh cluster in a
temporary directory, on a free loopback port, trusting the `postgres` user (no password).

A test module imports `postgres_fixture` to get the `postgres` fixture (one server per importing
module); `postgres.create_database(name)` returns the new database's plain `postgresql://` URL.
PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from tests.support.ports import free_port

READY_TIMEOUT_S = 30.0


def binary(name: str) -> str:
    """The newest installed PostgreSQL's `name` (Debian keeps them off PATH, per version)."""
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(Path(path).parts[-3])
    )
    path = versions[-1] if versions else shutil.which(name)
    if path is None:
        pytest.fail(
            f"PostgreSQL's '{name}' is not installed; these tests run a real server. "
            "Run scripts/install-system (it installs Debian's postgresql).",
            pytrace=False,
        )
    return path


class PostgresServer:
    """A running server: its port, its log, a way to make databases, and to restart it."""

    def __init__(self, port: int, command: list[str], log: Path, popen_options: dict):
        self.port = port
        self.command = command
        self.log = log
        self._popen_options = popen_options
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        with self.log.open("ab") as out:
            return subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, **self._popen_options)

    def stop(self) -> None:
        """A "fast" shutdown, as `pg_ctl stop -m fast`: clients are disconnected at once."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def start(self) -> None:
        self.process = self._start()
        _wait_until_ready(self)

    def restart(self) -> None:
        """As `pg_ctl restart -m fast`: every connection is dropped, the server is back in seconds."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        connection = psycopg2.connect(self.url())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def query(self, database: str, sql: str, *args) -> list[tuple]:
        """The rows of one statement, straight from the server (not through Dagster)."""
        connection = psycopg2.connect(self.url(database))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        finally:
            connection.close()


def _as_server_user() -> dict:
    """Popen arguments that drop root to the `postgres` user; nothing otherwise."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "Running as root, but there is no 'postgres' user to run PostgreSQL as. Run "
            "scripts/install-system (Debian's postgresql package creates it).",
            pytrace=False,
        )
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _wait_until_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            psycopg2.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start:\n{server.log.read_text()}", pytrace=False)
            time.sleep(0.2)


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture():
    """Outside pytest's tmp dirs, which only root may enter; removed afterwards."""
    initdb, postgres = binary("initdb"), binary("postgres")
    as_server_user = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    if as_server_user:
        shutil.chown(root, "postgres", "postgres")
    log = root / "postgres.log"
    server = None
    try:
        with log.open("ab") as out:
            created = subprocess.run(
                [
                    initdb,
                    "-D",
                    str(root / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                **as_server_user,
            )
            if created.returncode != 0:
                pytest.fail(f"initdb failed:\n{log.read_text()}", pytrace=False)
        port = free_port()
        command = [
            postgres,
            "-D",
            str(root / "data"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]
        server = PostgresServer(port, command, log, as_server_user)
        _wait_until_ready(server)
        yield server
    finally:
        if server is not None and server.process.poll() is None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
