"""Optional dependencies: the packages only some deployments need, each installed by an extra.

Every user gets the required dependencies; PostgreSQL, Celery/Redis, object stores and
scikit-learn/skops and Apprise come with the extras below (`pyproject.toml`). Code that needs one imports it
through `require` or `needs_extra`, so a missing package fails with a message that names the extra
and the pip command, not a bare "No module named ...".
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType

DISTRIBUTION = "hamilton-dagster-pipelines"
# extra -> the packages it installs (the same as [project.optional-dependencies])
EXTRAS = {
    "postgres": ("dagster-postgres", "psycopg2-binary"),
    "celery": ("dagster-celery", "redis"),
    "s3": ("s3fs",),
    "ml": ("scikit-learn", "skops"),
    "alerts": ("apprise",),
}


# top-level module -> the extra that installs it
EXTRA_OF_MODULE = {
    "dagster_postgres": "postgres",
    "psycopg2": "postgres",
    "dagster_celery": "celery",
    "redis": "celery",
    "s3fs": "s3",
    "sklearn": "ml",
    "skops": "ml",
    "apprise": "alerts",
}


# An ImportError, not a ModuleNotFoundError: Dagster replaces a ModuleNotFoundError raised while it
# imports a class named in dagster.yaml (the PostgreSQL storage) with "Couldn't import module ...".
class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def install_command(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (e.g. "sklearn.linear_model" -> "ml"), if any."""
    return EXTRA_OF_MODULE.get((module or "").split(".", 1)[0])


@contextlib.contextmanager
def needs_extra(extra: str, purpose: str) -> Iterator[None]:
    """Imports in this block come from `extra`; a missing one raises MissingExtraError.

    `purpose` says what needs them, e.g. "Dagster's PostgreSQL instance storage"."""
    if extra not in EXTRAS:
        raise ValueError(f"Unknown extra {extra!r}; the extras are {', '.join(EXTRAS)}.")
    try:
        yield
    except ModuleNotFoundError as error:
        raise MissingExtraError(
            f"{purpose} needs the '{extra}' extra ({', '.join(EXTRAS[extra])}), which is not "
            f"installed ({error}). Fix: {install_command(extra)}",
            name=error.name,
        ) from error


def require(extra: str, module: str, purpose: str) -> ModuleType:
    """The module `module` (e.g. "skops.io"), imported where it is used; see `needs_extra`."""
    with needs_extra(extra, purpose):
        return importlib.import_module(module)
