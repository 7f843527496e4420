"""The load: wrk runs and their parsing, and the slowloris trickler held around them."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from bench.layout import CLIENT_CPU, TRICKLE
from bench.processes import forget, kill_group, pinned, spawn
from bench.scenarios import Scenario


@dataclasses.dataclass
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p99_ms: float | None
    requests: int
    socket_errors: dict[str, int]
    non_2xx: int
    foreign_cpu: float = 0.0  # share of the machine's CPU time used by other processes meanwhile
    # The server's CPU time per completed request (its whole process group, all threads), µs.
    cpu_user_us: float | None = None
    cpu_sys_us: float | None = None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> WrkResult:
    """Parse wrk's ``--latency`` output."""
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line in wrk output")
    rps = float(m.group(1))
    p99: float | None = None
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if m:
        p99 = float(m.group(1)) * _UNITS_MS[m.group(2)]
    m = re.search(r"^\s+(\d+) requests in", out, re.M)
    requests = int(m.group(1)) if m else 0
    errors: dict[str, int] = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if requests == 0:
        p99 = None  # wrk prints zeros when nothing completed
    return WrkResult(rps, p99, requests, errors, int(m.group(1)) if m else 0)


def run_wrk(sc: Scenario, port: int, duration: int) -> WrkResult:
    """Run wrk pinned to the client CPU; raises RuntimeError on a wrk failure."""
    cmd = pinned(CLIENT_CPU, sc.wrk_command(port, duration))
    with tempfile.TemporaryFile("w+") as out:
        proc = spawn(cmd, out, text=True)
        try:
            proc.wait(duration + 30)
        except subprocess.TimeoutExpired:
            kill_group(proc, signal.SIGKILL)
            raise RuntimeError("wrk did not finish") from None
        forget(proc)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {text.strip()[-200:]}")
    return parse_wrk(text)


@contextlib.contextmanager
def trickling(port: int, conns: int, idle: bool = False) -> Iterator[list[str]]:
    """Hold ``conns`` slowloris connections (``idle``: idle keep-alive ones) to the server for
    the duration of the block.

    Yields a list that receives the trickler's final counters line after the block.
    """
    stats: list[str] = []
    if conns <= 0:
        yield stats
        return
    cmd = pinned(
        CLIENT_CPU,
        [sys.executable, str(TRICKLE), "--port", str(port), "--conns", str(conns)]
        + (["--idle", "--connect-timeout", "30"] if idle else []),
    )
    proc = spawn(cmd, subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # "ready N" once every connection is open
        if not ready.startswith("ready"):
            raise RuntimeError(f"trickler did not start: {ready.strip()}")
        yield stats
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=10)
            stats.append(rest.strip())
        except subprocess.TimeoutExpired:
            pass
        kill_group(proc, signal.SIGKILL, grace=0.5)
