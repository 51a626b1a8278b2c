"""A dataflow whose middle node kills its own process, as an OOM kill or `kill -9` would."""

import os
import signal
import time


def first() -> int:
    """Finishes normally."""
    return 1


def second(first: int) -> int:
    """Dies without any chance to clean up when KILL_NODE=second, after KILL_AFTER_S seconds."""
    if os.environ.get("KILL_NODE") == "second":
        time.sleep(float(os.environ.get("KILL_AFTER_S", "0")))
        os.kill(os.getpid(), signal.SIGKILL)
    return first + 1


def third(second: int) -> int:
    """Never reached in a killed run."""
    return second + 1
