"""What /proc says about the servers and the machine: processes, memory, CPU time."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path


def group_pids(pgid: int) -> list[int]:
    """All processes of a process group (the server's master and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ...
            pids.append(int(entry))
    return pids


def _kib(path: str, field: str) -> int:
    """The KiB value of the line `field` of a /proc file (0 if the process is gone)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size of one process, in KiB (0 if it is gone)."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def rss_kib(pid: int) -> int:
    """Resident set size of one process, in KiB (0 if it is gone)."""
    return _kib(f"/proc/{pid}/status", "VmRSS:")


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters (clock ticks) to tell the benchmark's own use from other processes'."""

    wall: float  # time.monotonic()
    busy: int  # all CPUs, not idle nor iowait (/proc/stat)
    server_user: int  # the server's process group: utime of its live processes
    server_sys: int  # ... and their stime
    children: float  # our reaped children (wrk, trickler), ticks
    helpers: int = 0  # our children that outlive a run (HAProxy): utime + stime, ticks

    @property
    def server(self) -> int:
        return self.server_user + self.server_sys


def group_cpu(pgid: int) -> tuple[int, int]:
    """(utime, stime) in ticks of the live processes of a process group, all threads."""
    user = system = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            user += int(f[11])  # utime, all threads
            system += int(f[12])  # stime
    return user, system


def cpu_snapshot(pgid: int, helpers: Sequence[int] = ()) -> CpuSnapshot:
    """Counters now; ``pgid`` is the server's process group, ``helpers`` those of our helpers."""
    tck = os.sysconf("SC_CLK_TCK")
    busy = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    user, system = group_cpu(pgid)
    helper = sum(sum(group_cpu(h)) for h in helpers)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        time.monotonic(), busy, user, system, (ru.ru_utime + ru.ru_stime) * tck, helper
    )


def foreign_share(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Share of the machine's CPU time between ``a`` and ``b`` used by processes not ours."""
    capacity = (b.wall - a.wall) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    if capacity <= 0:
        return 0.0
    ours = (b.server - a.server) + (b.children - a.children) + (b.helpers - a.helpers)
    return max(0.0, min(1.0, ((b.busy - a.busy) - ours) / capacity))


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs' time busy (not idle nor iowait) over ``seconds`` (/proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total
