"""Fixtures of the hardening suite: attacks and host failures, reproduced for real.

Owns: the `kind` fixture, and `pids_cgroup` (a fresh pids cgroup to run a server under a real
pids limit). Every regression test here runs on every worker kind in
`wsgid.workers.KINDS` (support/kinds.py), so a kind added there is attacked too without a
change here; `support.kinds.kind_args(kind)` gives the command-line flags that select it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kinds import WORKER_KINDS

PIDS_ROOT = Path("/sys/fs/cgroup/pids")  # the v1 pids controller, writable by root here


@pytest.fixture(params=WORKER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    """A fresh pids cgroup, removed afterwards (its processes gone or moved out first)."""
    group = PIDS_ROOT / f"wsgid-test-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text("max\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot create a pids cgroup under {PIDS_ROOT}: {exc}")
    try:
        yield group
    finally:
        deadline = time.monotonic() + 15
        while (group / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # the process leak check reports it
                (PIDS_ROOT / "cgroup.procs").write_text(pid)
        group.rmdir()
