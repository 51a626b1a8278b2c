"""The monitoring tests' Prometheus and Pushgateway (tests/support/prometheus.py), and a
Pushgateway that is up but hung."""

import pytest

from tests.support import servers
from tests.support.prometheus import prometheus_fixture, pushgateway_fixture  # noqa: F401  (the fixtures)


@pytest.fixture
def silent_server():
    """A URL whose server accepts connections and never answers (a hung Pushgateway)."""
    with servers.silent_server() as (host, port):
        yield f"http://{host}:{port}"
