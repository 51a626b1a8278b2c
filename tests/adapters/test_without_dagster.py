"""A plain Hamilton user's process: the three adapters on a driver, and Dagster never imported."""

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

SCRIPT = """
import sys
from hamilton import driver
from orchestration import OpenLineageAdapter, ProgressAdapter, PrometheusAdapter
import tests.orchestration.counting_flow as flow
updates = []
adapters = [OpenLineageAdapter(), ProgressAdapter([lambda *update: updates.append(update)]), PrometheusAdapter()]
driver.Builder().with_modules(flow).with_adapters(*adapters).build().execute(['summary'])
assert updates, 'no progress'
print(sorted(name for name in sys.modules if name.split('.')[0] == 'dagster'))
"""


@pytest.mark.services  # a fresh interpreter, to see what an import pulls in
def test_plain_hamilton_users_do_not_import_dagster(data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "PROMETHEUS"))}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PROMETHEUS_PUSHGATEWAY_URL": "http://127.0.0.1:9", "PIPELINE_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (data_dir / "lineage" / "events.jsonl").is_file()  # lineage did run, without Dagster
