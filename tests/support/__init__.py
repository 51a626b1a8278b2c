"""What the tests share: free ports, servers that never answer, process trees, and launchers of
the services the `services` tests start (PostgreSQL, Prometheus, `dagster dev`, ...)."""

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the working directory of every CLI run
BIN = Path(sys.executable).parent  # the virtualenv's commands: dagster, dagster-celery


def migrate_instance(env: Mapping[str, str], timeout_s: float = 300) -> None:
    """`dagster instance migrate` for the `DAGSTER_HOME` in `env`: the schema is made once, before
    several CLI processes open the instance at the same time."""
    migrated = subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
