"""Other processes, as the master sees them: alive or not, reaped, how they ended.

Owns: the one liveness check of the master (is the old master of an upgrade gone?) and of the
systemd notifier (did the new master take over?): an exited child that is not reaped yet (a
zombie) counts as gone, which `kill(pid, 0)` alone would not tell. Also the reaping of the
master's children (workers, and the new master of an upgrade) and the words its log uses for
how one ended, and how much memory a worker holds (`memory`, for max_worker_memory).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator


def running(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        # /proc unreadable (hidepid): only existence can be told.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def reaped() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of every child that has exited, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def describe(status: int) -> str:
    """A wait status in the log's words: `exit 3`, `killed by SIGKILL`."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def memory(pid: int, metric: str) -> int | None:
    """The memory of `pid` in bytes: its resident set (`rss`) or proportional share (`pss`).

    None when it cannot be read: the process is gone, or /proc is not there (not Linux) or
    not readable. RSS is the second field of /proc/PID/statm, in pages. PSS is the `Pss:`
    line of /proc/PID/smaps_rollup (Linux 4.14+), in kB; reading it makes the kernel walk the
    process's page tables, which is why rss is the default.
    """
    try:
        if metric == "pss":
            with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1]) * 1024
            return None
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None
