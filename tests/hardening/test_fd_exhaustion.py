"""A worker out of file descriptors neither spins nor floods the log, and one that cannot get
them back is replaced.

The server runs under a real RLIMIT_NOFILE of 128 (set before wsgid starts, so master and
workers inherit it). An app request leaks every descriptor left (`/leak`) on a connection the
test keeps open; the next client's connection makes accept() fail with EMFILE. The old loop
returned and was woken again at once by the still-readable listener: 100 % CPU, a line per
failure, the client never served. Now the worker backs off, logs `accept.failed` at most once
per interval, sees that its own connections are not what holds the descriptors, logs
`worker.fd_exhausted` and stops, and its replacement answers the waiting client.
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import procs
from support.client import poll
from support.kinds import kind_args
from support.load import events, wait_event
from support.server import WsgidServer

APP = "loop_app:app"
LIMIT = 128


def under_limit(limit: int, *args: str) -> Callable[[int], list[str]]:
    """argv running `python -m wsgid ARGS --bind ...` with RLIMIT_NOFILE set to `limit`."""
    prelude = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
        "os.execv(sys.executable, [sys.executable, '-m', 'wsgid', *sys.argv[1:]])"
    )

    def argv(port: int) -> list[str]:
        return [sys.executable, "-c", prelude, APP, "--bind", f"127.0.0.1:{port}", *args]

    return argv


def test_a_worker_whose_app_leaked_every_descriptor_backs_off_then_is_replaced(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(None, command=under_limit(LIMIT, *kind_args(kind), "--keep-alive", "2"))
    (worker,) = server.wait_workers(1)
    leaker = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        leaker.request("GET", "/leak")
        leaked = leaker.getresponse()
        assert leaked.status == 200
        assert b"Too many open files" in leaked.read()
        before = procs.cpu_seconds(worker)
        assert before is not None
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = time.monotonic()
            waiting = pool.submit(server.get, "/pid", timeout=30)
            wait_event(server.errlog, "accept.failed", timeout=10)
            # The worker's CPU while it is out of descriptors: sampled until it exits, at
            # most 5 s (the old loop burnt all of it).
            spent = 0.0
            while time.monotonic() - started < 5:
                now = procs.cpu_seconds(worker)
                if now is None:
                    break
                spent = now - before
                time.sleep(0.05)
            resp = waiting.result(timeout=30)
            answered = time.monotonic() - started
    finally:
        leaker.close()
    assert spent < 0.5, f"the worker used {spent:.2f}s of CPU while out of descriptors"
    assert resp.status == 200
    assert resp.json()["pid"] != worker  # type: ignore[index]
    assert answered < 15, f"the waiting client was answered after {answered:.1f}s"
    log = server.errlog()
    (exhausted,) = events(log, "worker.fd_exhausted")
    assert exhausted.get("limit") == str(LIMIT), exhausted.line
    assert exhausted.get("pid") == str(worker), exhausted.line
    assert len(events(log, "accept.failed")) <= 5, log[-3000:]
    assert procs.wait_gone([worker], timeout=10) == []
    replacement = poll(
        lambda: [p for p in server.worker_pids() if p != worker], timeout=10, what="a new worker"
    )
    assert server.get("/pid").json()["pid"] in replacement  # type: ignore[index]


def test_a_worker_whose_own_connections_hold_every_descriptor_waits_for_one_to_close(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    limit = 64
    server = wsgid(None, command=under_limit(limit, *kind_args(kind), "--keep-alive", "60"))
    (worker,) = server.wait_workers(1)
    held: list[http.client.HTTPConnection] = []
    try:
        # Keep-alive clients, each served once, until one is not served: the worker's own
        # connections now hold every descriptor it had.
        waiting = None
        for _ in range(limit):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1.5)
            held.append(conn)
            try:
                conn.request("GET", "/pid")
                conn.getresponse().read()
            except TimeoutError:
                waiting = conn
                break
        assert waiting is not None, "every connection was served: the limit did not apply"
        wait_event(server.errlog, "accept.failed", timeout=10)
        before = procs.cpu_seconds(worker)
        assert before is not None
        time.sleep(3)  # the span over which the worker's CPU is measured
        after = procs.cpu_seconds(worker)
        assert after is not None, "the worker exited although its own connections held the fds"
        assert after - before < 0.5, f"the worker used {after - before:.2f}s of CPU in 3 s"
        held[0].close()  # one descriptor comes back
        started = time.monotonic()
        waiting.sock.settimeout(10)
        resp = waiting.getresponse()
        assert resp.status == 200
        assert resp.read()
        assert time.monotonic() - started < 5
    finally:
        for conn in held:
            conn.close()
    log = server.errlog()
    assert not events(log, "worker.fd_exhausted"), log[-3000:]
    assert len(events(log, "accept.failed")) <= 4, log[-3000:]
    assert server.worker_pids() == [worker]


def test_a_leaked_worker_served_by_sequential_clients_is_replaced_without_a_line_each(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """The app leaked all but the descriptor its last connection frees: accepts then fail and
    work in turn (a light load, a health checker). The worker is still found out of
    descriptors and replaced, and the log gets a few lines, not one per connection."""
    if kind == "sync":
        pytest.skip("sync: the one descriptor a closed connection frees is the next one's")
    server = wsgid(None, command=under_limit(LIMIT, *kind_args(kind), "--keep-alive", "2"))
    (worker,) = server.wait_workers(1)
    leaker = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    leaker.request("GET", "/leak")
    assert b"Too many open files" in leaker.getresponse().read()
    leaker.close()
    deadline = time.monotonic() + 30
    while worker in server.worker_pids() and time.monotonic() < deadline:
        assert server.get("/pid", timeout=30).status == 200
    log = server.errlog()
    assert events(log, "worker.fd_exhausted"), log[-3000:]
    noisy = events(log, "accept.recovered") + events(log, "accept.failed")
    assert len(noisy) <= 10, log[-3000:]
    assert procs.wait_gone([worker], timeout=10) == []
