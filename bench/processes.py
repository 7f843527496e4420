"""Process management: each process the bench starts gets its own process group, killed at exit.

The signal handlers turn SIGTERM and SIGHUP into :class:`Interrupted`, and Ctrl-C into
KeyboardInterrupt, so that the ``finally`` blocks stop every server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from bench.layout import HOST, REPO

_GROUPS: dict[int, subprocess.Popen[Any]] = {}


class Interrupted(Exception):
    """Raised from a SIGTERM/SIGHUP handler so that ``finally`` blocks clean up."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP end the run through its ``finally`` blocks."""
    # Ctrl-C raises KeyboardInterrupt even if SIGINT came ignored (a background job of a
    # non-interactive shell); the servers then get SIGINT's default action too, so that the
    # fast stop of kill_group (SIGINT) works.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def spawn(cmd: Sequence[str], out: IO[Any] | int | None, **kw: Any) -> subprocess.Popen[Any]:
    """Start ``cmd`` in a new session (its own process group) and remember it for cleanup."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kw,
    )
    _GROUPS[proc.pid] = proc
    return proc


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, grace: float = 3.0) -> None:
    """Stop a process group: ``sig`` (fast stop), then SIGKILL to whatever is left of it."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # workers that outlived their master, too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    _GROUPS.pop(pgid, None)


def forget(proc: subprocess.Popen[Any]) -> None:
    """``proc`` was waited for and its group is gone: nothing left to kill at exit."""
    _GROUPS.pop(proc.pid, None)


def kill_all() -> None:
    """Kill every process group still running (used on exit, error and Ctrl-C)."""
    for proc in list(_GROUPS.values()):
        kill_group(proc, signal.SIGKILL, grace=1.0)


def pinned(cpu: str, cmd: Sequence[str]) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c <cpu>`` when this machine has that CPU and taskset."""
    if shutil.which("taskset") and int(cpu) in os.sched_getaffinity(0):
        return ["taskset", "-c", cpu, *cmd]
    return list(cmd)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port
