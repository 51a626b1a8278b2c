"""What the tests share: free ports, servers that never answer, process trees, and launchers of
the services the `services` tests start (PostgreSQL, Prometheus, `dagster dev`, ...)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the working directory of every CLI run
BIN = Path(sys.executable).parent  # the virtualenv's commands: dagster, dagster-celery
