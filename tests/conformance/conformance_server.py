"""Real wsgid processes serving the conformance app (tests/conformance only).

Owns: `running()`, which starts a wsgid master with one worker of a given kind through the
shared `WsgidServer` harness (its leak checks included) and `conformance_app:app` on the
PYTHONPATH, and `ConformanceServer`, the handle tests use: raw connections, the app's call
counter (to prove "the app was not called"), the worker pids (to prove "no worker died") and
the error log. The transport is plain HTTP, or HTTPS when `running()` is given test
certificates (support/tls.py): the server gets `--certfile/--keyfile`, is ready once an HTTPS
request is answered, and every connection of the handle is TLS, verified against the test CA.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from conformance.conformance_wire import DEFAULT_TIMEOUT, Malformed, Stalled, Wire
from support.server import APPS_DIR, WorkDir, WsgidServer
from support.tls import Certs

HERE = Path(__file__).resolve().parent
APP = "conformance_app:app"
CALLS = b"GET /_calls HTTP/1.1\r\nHost: state\r\nConnection: close\r\n\r\n"


def tls_client_context(certs: Certs) -> ssl.SSLContext:
    """A client context that trusts the test CA and checks the server's name (127.0.0.1)."""
    return ssl.create_default_context(cafile=str(certs.ca))


class ConformanceServer:
    """A running wsgid (one worker) serving the conformance app, plus probes of its state."""

    def __init__(self, server: WsgidServer, kind: str, tls: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.kind = kind
        self.tls = tls  # None: plain HTTP
        self.port = server.port
        self.worker_pids = server.wait_workers(1)

    def wire(self, timeout: float | None = None) -> Wire:
        """A new connection, over TLS if the server serves HTTPS."""
        return Wire.connect(self.port, DEFAULT_TIMEOUT if timeout is None else timeout, self.tls)

    def app_state(self) -> tuple[int, int]:
        """(requests the app has seen, pid of the worker that answered)."""
        with self.wire() as w:
            w.send(CALLS)
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
    certs: Certs | None = None,
) -> Iterator[ConformanceServer]:
    """A conformance server with `args` (and `env`) for the duration of the `with` block.

    Its work directory is made under `parent` (the session's temp root) and removed after;
    leftover processes or files make the block fail. `package`, if given, is a directory
    holding another copy of wsgid to run (the pure-Python one, say). With `certs`, it serves
    HTTPS with their server certificate, and the handle's connections are TLS.
    """
    tls = None if certs is None else tls_client_context(certs)
    if certs is not None:
        args = [*args, "--certfile", str(certs.server), "--keyfile", str(certs.server_key)]
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
        server.start(workers=1, ready=None if tls is None else lambda: _answers(server.port, tls))
        yield ConformanceServer(server, kind, tls)
        problems = server.close()
        assert not problems, "\n".join(problems)
    finally:
        server.close(check=False)
        shutil.rmtree(root, ignore_errors=True)


def _answers(port: int, tls: ssl.SSLContext) -> None:
    """Return once an HTTPS request to `port` is answered; raise OSError until then."""
    with Wire.connect(port, 2.0, tls) as w:
        w.send(CALLS)
        try:
            w.read_reply()
        except (EOFError, Stalled, Malformed) as exc:
            raise ConnectionError(f"no HTTPS answer yet: {exc!r}") from exc
