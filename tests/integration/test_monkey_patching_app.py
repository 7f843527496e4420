"""An app that monkey-patches the standard library with gevent at import, under sync and gthread.

Many apps' wsgi.py start with `from gevent import monkey; monkey.patch_all()`, which deletes
`select.epoll` and swaps sockets, polls and thread starts for gevent's. The workers call the
primitives they bound before the app was imported (wsgid/workers/unpatched.py), so:

- the sync worker serves such an app, also preloaded (the master then runs patched too):
  keep-alive, the app's own cooperative socket I/O, a request body and a response larger
  than the socket buffers, a killed worker replaced, a reload, a clean stop;
- the gthread worker refuses it at boot (its threads would be greenlets that never run):
  exit code 4 and one line naming the fix; patched without threading
  (`patch_all(thread=False)`) it serves, its threads in parallel.

The app talks to `Peer`, a listener in this process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.kinds import kind_args
from support.server import WsgidServer
from wsgid.exitcodes import ExitCode

APP = "gevent_app:app"
PRELOAD = {"lazy": (), "preload": ("--preload",)}


class Peer:
    """A TCP listener the app connects to: it answers `pong:` and what it read.

    It holds its answers until `gate` connections are open at once, so a test can prove
    that that many requests run in the app at the same time (with fewer, each waits until
    its client gives up).
    """

    def __init__(self, gate: int = 1) -> None:
        self.gate = gate
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.waiting: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the listener was closed: the test is over
            while True:
                conn, _ = self.sock.accept()
                self.waiting.append(conn)
                if len(self.waiting) >= self.gate:
                    for waiting in self.waiting:
                        with waiting:
                            waiting.sendall(b"pong:" + waiting.recv(4096))
                    self.waiting = []

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        for conn in self.waiting:
            conn.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    listener = Peer()
    yield listener
    listener.close()


def remote_port(conn: http.client.HTTPConnection) -> str:
    """`GET /` on `conn`, checking that the app's patching took and the connection stays open.

    Returns the client port the app saw: the same on every call means one connection.
    """
    conn.request("GET", "/")
    resp = conn.getresponse()
    info = json.loads(resp.read())
    assert resp.status == 200 and not resp.will_close, resp.headers
    assert info["patched"], "the app's patching did not take"
    return str(info["remote_port"])


@pytest.mark.parametrize("mode", sorted(PRELOAD))
def test_sync_serves_an_app_that_monkey_patches(
    wsgid: Callable[..., WsgidServer], peer: Peer, mode: str
) -> None:
    server = wsgid(APP, *kind_args("sync"), *PRELOAD[mode], workers=1)
    conn = server.connection()
    try:
        ports = {remote_port(conn) for _ in range(3)}
        conn.request("GET", f"/relay?port={peer.port}")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"pong:ping\n")
        body = os.urandom(2 << 20)  # beyond the socket buffers: the worker waits for it
        conn.request("POST", "/echo", body=body)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == body
        conn.request("GET", "/big?mb=8")  # past the high-water mark: the worker waits to send
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == bytes(range(256)) * (8 << 12)
        ports.add(remote_port(conn))
        assert len(ports) == 1, f"keep-alive: one connection expected, the app saw {ports}"
    finally:
        conn.close()

    # A killed worker is reaped and replaced: the master, patched too when it preloaded the
    # app, still notices its children.
    (worker,) = server.worker_pids()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.worker_pids() in ([], [worker]):
        assert time.monotonic() < deadline, f"worker {worker} not replaced\n{server.errlog()}"
        time.sleep(0.02)
    assert server.get(f"/relay?port={peer.port}").body == b"pong:ping\n"

    # A reload (HUP) replaces the worker with one of the new generation.
    (replacement,) = server.wait_workers(1)
    server.send_signal(signal.SIGHUP)
    server.wait_log("reload.done", timeout=15)
    assert server.wait_workers(1) != [replacement]
    assert server.get(f"/relay?port={peer.port}").body == b"pong:ping\n"
    assert server.stop() == 0, server.errlog()


@pytest.mark.parametrize("mode", sorted(PRELOAD))
def test_gthread_refuses_an_app_that_monkey_patches_threading(
    wsgid: Callable[..., WsgidServer], mode: str
) -> None:
    server = wsgid(APP, *kind_args("gthread"), *PRELOAD[mode], "--workers", "1", start=False)
    rc = server.wait_exit(timeout=10)
    log = server.errlog()
    assert rc == ExitCode.APP_LOAD_FAILED, f"exit {rc}\n{log}"
    refusals = [line for line in log.splitlines() if "worker.app_load_failed" in line]
    assert len(refusals) == 1, log
    assert "monkey-patched threading" in refusals[0], log
    assert "-k sync" in refusals[0] and "-k gevent" in refusals[0], log


def test_gthread_serves_an_app_patched_without_threading(
    wsgid: Callable[..., WsgidServer],
) -> None:
    threads = 4
    gated = Peer(gate=threads)  # answers only once every thread is in the app
    try:
        server = wsgid(
            APP,
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            workers=1,
            env={"TESTAPP_GEVENT_THREAD": "0"},
        )
        conn = server.connection()
        try:
            ports = {remote_port(conn) for _ in range(3)}
            assert len(ports) == 1, f"keep-alive: one connection expected, the app saw {ports}"
        finally:
            conn.close()
        relay = f"/relay?port={gated.port}"
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(lambda _: server.get(relay, timeout=15).body, range(threads)))
        assert answers == [b"pong:ping\n"] * threads
        assert server.stop() == 0, server.errlog()
    finally:
        gated.close()
