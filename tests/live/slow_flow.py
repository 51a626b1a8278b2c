"""A three-asset chain whose middle node runs long enough to be watched while it runs and then
terminated (tests/live/test_live_progress_dev.py). Pure Hamilton: no Dagster here."""

import time

SLOW_S = 30.0  # far longer than the test needs to see the node running and terminate the run


def fast_a() -> int:
    """Finishes at once: no `running` line."""
    return 1


def slow(fast_a: int) -> int:
    """Sleeps `SLOW_S` seconds; the test terminates the run while it does."""
    time.sleep(SLOW_S)
    return fast_a + 1


def after(slow: int) -> int:
    """Never reached in a terminated run."""
    return slow + 1
