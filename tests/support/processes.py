"""The processes of this machine, read from /proc: who descends from whom,
and which are analysis workers (multiprocessing's spawn_main)."""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from tests.support.photos import REPO


def parents() -> dict[int, int]:
    """Every live process id and its parent's id."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`: children, their children, and so on."""
    tree = parents()
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in tree.items() if ppid == parent]
        found += children
        todo += children
    return found


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_worker(pid: int) -> bool:
    """A multiprocessing spawn child: an analysis worker (`spawn_main`)."""
    return any("spawn_main" in part for part in command(pid))


def workers_below(pid: int) -> list[int]:
    return [p for p in descendants(pid) if is_worker(p) and alive(p)]


def stray_workers() -> list[int]:
    """Orphaned workers of this repository: spawn_main processes of this
    Python (this venv), started in this repository, whose parent is gone
    (they were adopted by init)."""
    found = []
    for pid, ppid in parents().items():
        if ppid != 1 or not is_worker(pid) or not alive(pid):
            continue
        argv = command(pid)
        with contextlib.suppress(OSError):
            if argv and argv[0].startswith(sys.prefix) and Path(f"/proc/{pid}/cwd").resolve() == REPO:
                found.append(pid)
    return found


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to `timeout` seconds for `pids` to end; those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
