"""Dagster's PostgreSQL storage, always through psycopg2, so a plain `postgresql://` URL works.

SQLAlchemy 2.1 reads `postgresql://user@host/db` as psycopg 3, which dagster-postgres 0.29 does not
install and whose server-side parameters break its `NOTIFY` statement. This storage hands
dagster-postgres the same URL with the psycopg2 driver named (both come with the `postgres` extra).
Used by deploy/dagster.yaml; the URL itself is never logged or put in an error message.

In the webserver, dagster-postgres keeps a pool of open connections; after a database restart each
pooled connection failed its next request (the UI showed an error per stale connection). Here a
pooled connection is checked before use (SQLAlchemy's documented `checkout` event: a
`DisconnectionError` makes the pool replace it), so the UI carries on across a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy
from dagster._serdes import ConfigurableClassData

from orchestration.extras import needs_extra

with needs_extra("postgres", "Dagster's PostgreSQL instance storage (deploy/dagster.yaml)"):
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

PSYCOPG2 = "postgresql+psycopg2"
PLAIN_SCHEMES = ("postgresql", "postgres", PSYCOPG2)


def psycopg2_url(url: str) -> str:
    """The URL with `postgresql+psycopg2://` as its scheme (`postgres://` is accepted too)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in PLAIN_SCHEMES:
        shown = f"'{scheme}://'" if separator else "no '<scheme>://'"
        raise ValueError(
            f"DAGSTER_PG_URL must be a PostgreSQL URL such as "
            f"postgresql://user:password@host:5432/dagster, but it has {shown}. Fix: set it to "
            "such a URL; the driver is always psycopg2, so leave the scheme plain."
        )
    return f"{PSYCOPG2}://{rest}"


class PostgresStorage(DagsterPostgresStorage):
    """`storage: postgres` of dagster.yaml (the same config), reached through psycopg2."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver = _checking_pooled_connections(storage)  # type: ignore[method-assign]

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> PostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=psycopg2_url(pg_url_from_config(config_value)),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


def _checking_pooled_connections(storage: Any) -> Callable[..., None]:
    """The storage's `optimize_for_webserver` (which gives it a pool), then a check of every pooled
    connection as it is checked out."""
    optimize = storage.optimize_for_webserver

    def optimized(*args: Any, **kwargs: Any) -> None:
        optimize(*args, **kwargs)
        sqlalchemy.event.listen(storage._engine, "checkout", _ping)

    return optimized


def _ping(dbapi_connection, connection_record, connection_proxy) -> None:
    import psycopg2

    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except psycopg2.Error as error:  # closed by a database restart: the pool connects afresh
        raise sqlalchemy.exc.DisconnectionError(str(error)) from None
