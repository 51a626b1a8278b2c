"""Processes seen through /proc: a process tree, a process group, and ending a group for good.

Zombies never count as running: an exited child whose parent is gone stays a zombie when PID 1
does not reap it, as in containers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _stats() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            yield int(stat.parent.name), state, int(parent), int(group)


def group_members(group: int) -> list[int]:
    """Processes of the group that still run."""
    return [pid for pid, state, _, pgid in _stats() if pgid == group and state != "Z"]


def descendants(pid: int) -> list[int]:
    """Running children, grandchildren, ... of `pid`."""
    children: dict[int, list[int]] = {}
    for child, state, parent, _ in _stats():
        if state != "Z":
            children.setdefault(parent, []).append(child)
    found, stack = [], list(children.get(pid, []))
    while stack:
        found.append(child := stack.pop())
        stack += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    """The process's command line, or its pid once it is gone (for messages)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return str(pid)


def stop_group(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM to the process group `process` leads (started with `start_new_session=True`), then
    SIGKILL to whatever is left after `timeout_s`: services fork workers that outlive their leader."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait_s
        while group_members(process.pid) and time.monotonic() < deadline:
            process.poll()  # reaps the leader
            time.sleep(0.1)
    process.poll()
