"""The `slow` marker, also registered by tests/faults/conftest.py, for when tests/live runs alone."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes half a minute or more (runs by default)")
