"""Real wsgid processes serving the conformance app (tests/conformance only).

Owns: `running()`, which starts a wsgid master with one worker of a given kind through the
shared `WsgidServer` harness (its leak checks included) and `conformance_app:app` on the
PYTHONPATH, and `ConformanceServer`, the handle tests use: raw connections, the app's call
counter (to prove "the app was not called"), the worker pids (to prove "no worker died") and
the error log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from conformance.conformance_wire import Wire
from support.server import APPS_DIR, WorkDir, WsgidServer

HERE = Path(__file__).resolve().parent
APP = "conformance_app:app"


class ConformanceServer:
    """A running wsgid (one worker) serving the conformance app, plus probes of its state."""

    def __init__(self, server: WsgidServer, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.port = server.port
        self.worker_pids = server.wait_workers(1)

    def wire(self, timeout: float | None = None) -> Wire:
        return Wire.connect(self.port) if timeout is None else Wire.connect(self.port, timeout)

    def app_state(self) -> tuple[int, int]:
        """(requests the app has seen, pid of the worker that answered)."""
        with self.wire() as w:
            w.send(b"GET /_calls HTTP/1.1\r\nHost: state\r\nConnection: close\r\n\r\n")
            reply = w.read_reply()
        assert reply.status == 200, reply.summary()
        data = json.loads(reply.body)
        return int(data["calls"]), int(data["pid"])

    def calls(self) -> int:
        return self.app_state()[0]

    def errlog(self) -> str:
        return self.server.errlog()

    def log_mark(self) -> int:
        """A position in the error log; `log_since(mark)` is what was written after it."""
        return len(self.errlog())

    def log_since(self, mark: int) -> str:
        return self.errlog()[mark:]

    def wait_log(self, mark: int, needle: str, timeout: float = 5.0) -> str:
        """Poll until `needle` appears in the error log after `mark`; return that part."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(mark)
            if needle in text or time.monotonic() >= deadline:
                return text
            time.sleep(0.02)

    def assert_workers_unchanged(self) -> None:
        self.server.check_running()
        now = self.server.worker_pids()
        assert now == self.worker_pids, (
            f"worker pids changed from {self.worker_pids} to {now} (a worker died)\n"
            f"--- stderr:\n{self.errlog()[-4000:]}"
        )


@contextlib.contextmanager
def running(
    parent: Path,
    kind: str,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    package: Path | None = None,
) -> Iterator[ConformanceServer]:
    """A conformance server with `args` (and `env`) for the duration of the `with` block.

    Its work directory is made under `parent` (the session's temp root) and removed after;
    leftover processes or files make the block fail. `package`, if given, is a directory
    holding another copy of wsgid to run (the pure-Python one, say).
    """
    root = Path(tempfile.mkdtemp(prefix=f"conformance-{kind}-", dir=parent))
    path = [str(HERE), str(APPS_DIR)]
    full_env = {"PYTHONPATH": os.pathsep.join([str(package), *path] if package else path)}
    full_env.update(env or {})
    server = WsgidServer(
        APP,
        ["--worker-class", kind, "--workers", "1", *args],
        workdir=WorkDir(root),
        env=full_env,
        name=f"conformance-{kind}",
    )
    try:
        server.start(workers=1)
        yield ConformanceServer(server, kind)
        problems = server.close()
        assert not problems, "\n".join(problems)
    finally:
        server.close(check=False)
        shutil.rmtree(root, ignore_errors=True)
