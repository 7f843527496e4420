"""Fixtures of the system tests: notify receivers, tool and privilege checks.

The system tests start wsgid the way an operator or systemd does (socket activation, a
NOTIFY_SOCKET, `--daemon`, root with `user = ...`, a real systemd) and clean up after
themselves whatever happens. What they need from the machine is installed by
`scripts/apt-deps.sh` (see docs/systemd.md); a test that cannot run here says why in its
skip reason.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from system.sysd_notify import NotifyReceiver


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short-path private directory for unix sockets (sun_path is 108 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="wsgid-sys-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def notify(sockdir: Path) -> Iterator[Callable[[str], NotifyReceiver]]:
    """`notify("path")` or `notify("abstract")`: a running NOTIFY_SOCKET receiver."""
    receivers: list[NotifyReceiver] = []

    def factory(kind: str) -> NotifyReceiver:
        if kind == "abstract":
            address = f"@wsgid-test-{uuid.uuid4().hex[:12]}"
        else:
            address = str(sockdir / f"notify-{len(receivers)}.sock")
        receiver = NotifyReceiver(address)
        receivers.append(receiver)
        return receiver

    yield factory
    for receiver in receivers:
        receiver.close()
