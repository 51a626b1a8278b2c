"""The fault tests' figures: what they measured, for docs/reliability.md."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def figures():
    """Measured figures for docs/reliability.md, printed at the end of the session."""
    collected: dict = {}
    yield collected
    if collected:
        print("\nFAULT FIGURES " + json.dumps(collected, indent=1, default=str))
