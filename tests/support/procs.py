"""Look at processes through /proc: children, process groups, sessions (no psutil).

Everything here reads /proc/<pid>/stat, whose fields after the command name (which may itself
contain spaces and parentheses) are: state ppid pgrp session ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    session: int


def _raw_stat(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def read_stat(pid: int) -> ProcStat | None:
    """The stat of `pid`, or None if it does not exist (any more)."""
    raw = _raw_stat(pid)
    if raw is None:
        return None
    open_paren = raw.index("(")
    close_paren = raw.rindex(")")
    fields = raw[close_paren + 2 :].split()
    return ProcStat(
        pid=pid,
        comm=raw[open_paren + 1 : close_paren],
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
    )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time `pid` has used (utime + stime), or None if it is gone."""
    raw = _raw_stat(pid)
    if raw is None:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def all_stats() -> list[ProcStat]:
    stats = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                stats.append(st)
    return stats


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def is_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    st = read_stat(pid)
    return st is not None and st.state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live (non-zombie) children of `pid`, sorted."""
    return sorted(st.pid for st in all_stats() if st.ppid == pid and st.state not in ("Z", "X"))


def members(group: int) -> list[ProcStat]:
    """Live processes whose process group or session is `group` (zombies excluded)."""
    return [
        st
        for st in all_stats()
        if (st.pgrp == group or st.session == group) and st.state not in ("Z", "X")
    ]


def describe(stats: list[ProcStat]) -> str:
    return "; ".join(f"pid {st.pid} [{st.state}] {cmdline(st.pid) or st.comm}" for st in stats)


def kill_group(group: int, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to process group `group` and to any member that left it (setsid, setpgid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    for st in members(group):
        with contextlib.suppress(ProcessLookupError):
            os.kill(st.pid, sig)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll until none of `pids` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if is_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def users_of(root: str) -> list[int]:
    """Live processes (other than this one) whose cwd or an open file lies under `root`.

    Catches what escaped its process group and session (a double-forked daemon) but still
    works in, or writes to, a test's directory.
    """
    prefix = os.path.realpath(root).rstrip("/") + "/"
    found = []
    me = os.getpid()
    for st in all_stats():
        if st.pid == me or st.state in ("Z", "X"):
            continue
        links = [f"/proc/{st.pid}/cwd"]
        with contextlib.suppress(OSError):
            links += [f"/proc/{st.pid}/fd/{fd}" for fd in os.listdir(f"/proc/{st.pid}/fd")]
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if (target + "/").startswith(prefix):
                found.append(st.pid)
                break
    return found
