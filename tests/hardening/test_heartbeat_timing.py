"""Requests shorter than `timeout`, and idleness, never get the worker killed.

The heartbeat used to be stamped only when epoll returned: a request ending a little before
`timeout`, followed by an idle second in epoll, looked hung to the master (with --timeout 5,
requests of 4.3-4.9 s got the worker killed in 3 of 6 tries), and so did a slow reader that
the I/O timeout had already dealt with. Now the heartbeat is stamped when a request ends, and
waits for a slow client give up before the request's `timeout`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from support.kinds import kind_args
from support.load import events
from support.server import WsgidServer

APP = "loop_app:app"
TIMEOUT = 3.0


def test_requests_a_little_shorter_than_the_timeout_keep_the_same_worker(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--timeout", str(TIMEOUT), workers=1)
    (worker,) = server.wait_workers(1)
    # One keep-alive connection, so that nothing but the next request wakes the worker.
    conn = server.connection(timeout=30)
    try:
        for _ in range(5):
            conn.request("GET", f"/sleep?s={TIMEOUT - 0.4}")
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read())["pid"] == worker
            # Part of the scenario, not a wait for a condition: the worker goes back to
            # epoll with nothing to do, where the old code stamped the heartbeat only when
            # epoll gave up a second later; the master then saw it silent for > timeout.
            time.sleep(1.2)
    finally:
        conn.close()
    log = server.errlog()
    assert not events(log, "worker.timeout"), log[-3000:]
    assert server.worker_pids() == [worker]


def test_an_idle_worker_outlives_a_one_second_timeout_and_no_block_is_reported(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """An idle worker stamped its heartbeat once a second: against `--timeout 1` the master
    took it for hung (eventlet's within two seconds, gevent's now and then), and eventlet's
    hub watcher reported idle turns as blocks (`worker.hub_blocked`, even with the default
    timeout). Now an idle wait lasts at most half the timeout, and the watcher measures a
    block from when the loop's turn was due."""
    server = wsgid(APP, *kind_args(kind), "--timeout", "1", workers=1)
    (worker,) = server.wait_workers(1)
    # Part of the scenario, not a wait for a condition: the worker idles for four timeouts.
    time.sleep(4.0)
    resp = server.get("/pid")
    assert resp.json()["pid"] == worker  # type: ignore[index]
    log = server.errlog()
    assert not events(log, "worker.timeout"), log[-3000:]
    assert not events(log, "worker.hub_blocked"), log[-3000:]
    assert server.worker_pids() == [worker]


def test_a_slow_reader_ends_its_request_without_the_worker_being_killed(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--timeout", str(TIMEOUT), workers=1)
    (worker,) = server.wait_workers(1)
    with socket.create_connection(("127.0.0.1", server.port)) as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Reads nothing: the response fills the socket buffers and the worker's queue.
        reader.settimeout(TIMEOUT + 10)
        started = time.monotonic()
        deadline = started + TIMEOUT + 10
        # The server gives up on it: the connection ends (read what is there until EOF).
        time.sleep(TIMEOUT + 1.5)  # the reader is slow: nothing read for longer than timeout
        got = 0
        while time.monotonic() < deadline:
            try:
                chunk = reader.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
        assert got < 64 << 20, "the whole body arrived: the reader was not slow enough"
    time.sleep(1.5)  # past the master's next check
    resp = server.get("/pid")
    assert resp.json()["pid"] == worker  # type: ignore[index]
    log = server.errlog()
    assert not events(log, "worker.timeout"), log[-3000:]
