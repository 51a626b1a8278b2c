"""Dagster's PostgreSQL storage, always through psycopg2, so a plain `postgresql://` URL works.

SQLAlchemy 2.1 reads `postgresql://user@host/db` as psycopg 3, which dagster-postgres 0.29 does not
install and whose server-side parameters break its `NOTIFY` statement. This storage hands
dagster-postgres the same URL with the psycopg2 driver named (both come with the `postgres` extra).
Used by deploy/dagster.yaml; the URL itself is never logged or put in an error message.
"""

from __future__ import annotations

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

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> PostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=psycopg2_url(pg_url_from_config(config_value)),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
