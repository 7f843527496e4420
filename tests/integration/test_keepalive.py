"""Persistent connections: reuse, the keep-alive idle timeout, HTTP/1.0 close; idle ones
making room at `worker_connections` and closed at once by a stop (every worker kind)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.client import RawConnection
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

SLEEP_APP = "sleep_app:app"
kinds = pytest.mark.parametrize("kind", WORKER_KINDS)


def test_keepalive_several_requests_reuse_one_connection(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(SLEEP_APP, workers=1)
    conn = server.connection()
    try:
        remote_ports = set()
        client_socks = set()
        for i in range(10):
            conn.request("GET", f"/pid?n={i}")
            resp = conn.getresponse()
            assert resp.status == 200
            assert not resp.will_close, resp.headers
            data = json.loads(resp.read())
            remote_ports.add(data["remote_port"])
            assert conn.sock is not None
            client_socks.add(conn.sock.getsockname())
        # The client used one socket and the server saw one peer port: one TCP connection.
        assert len(client_socks) == 1
        assert remote_ports == {str(next(iter(client_socks))[1])}
    finally:
        conn.close()


def test_keepalive_pipelined_requests_answered_in_order(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(SLEEP_APP, workers=1)
    with server.raw() as conn:
        conn.send(
            b"".join(f"GET /pid?n={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(3))
        )
        answers = [conn.read_response() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert len({json.loads(a.body)["remote_port"] for a in answers}) == 1


def test_idle_keepalive_connection_closed_after_keepalive_seconds(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(SLEEP_APP, "--keep-alive", "1", workers=1)
    with server.raw(timeout=10) as conn:
        first = conn.request(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert first.status == 200
        # The server closes the idle connection by itself: EOF well before our 10 s timeout.
        assert conn.fp.read(1) == b""


def test_http10_request_without_keepalive_is_answered_then_closed(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(SLEEP_APP, workers=1)
    with server.connect(timeout=10) as sock:
        sock.sendall(b"GET /pid HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # until the server closes: EOF ends the response
            data += chunk
    assert data.startswith(b"HTTP/1.")
    assert b" 200 " in data.split(b"\r\n", 1)[0]
    assert b'"pid"' in data


def test_keepalive_connection_survives_app_error(wsgid: Callable[..., WsgidServer]) -> None:
    """A 404 or 500 from the app does not cost the client its connection (Flask app)."""
    server = wsgid("flask_app:app", workers=1)
    conn = server.connection()
    try:
        statuses = []
        for path in ("/", "/no-such", "/echo?x=1"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        assert statuses == [200, 404, 200]
    finally:
        conn.close()


def idle_connections(server: WsgidServer, count: int) -> list[RawConnection]:
    """`count` keep-alive connections, each answered once, one after the other, then idle."""
    idle = [server.raw(timeout=60) for _ in range(count)]
    for conn in idle:
        assert conn.request(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    return idle


@kinds
def test_at_worker_connections_the_longest_idle_connection_makes_room(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """gunicorn#2585: with every place held by an idle keep-alive connection, a new client
    is served at once (the connection idle the longest is closed), not after `keepalive`."""
    server = wsgid(
        SLEEP_APP, *kind_args(kind), "--worker-connections", "3", "--keep-alive", "120",
        workers=1,
    )  # fmt: skip
    idle = idle_connections(server, 3)  # the first is the oldest idle
    try:
        started = time.monotonic()
        assert server.get("/pid", timeout=60).status == 200
        waited = time.monotonic() - started
        assert waited < 30, f"the new client waited {waited:.1f} s (keepalive is 120 s)"
        assert idle[0].fp.read(1) == b"", "the oldest idle connection should have been closed"
        for conn in idle[1:]:  # the others keep their connection
            assert conn.request(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    finally:
        for conn in idle:
            conn.close()
    assert server.stop() == 0, server.errlog()


@kinds
def test_term_closes_idle_keepalive_connections_at_once(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """gunicorn#3227: a worker whose connections are all idle stops without waiting for
    `keepalive` or `graceful_timeout`; its idle clients see the connection end. Nor does it
    wait for them to close their end, which a pooled client does only at its next request:
    the stop takes about a second at most, where a lingering close held it 2 to 3 s."""
    server = wsgid(
        SLEEP_APP, *kind_args(kind), "--keep-alive", "120", "--graceful-timeout", "120",
        workers=1,
    )  # fmt: skip
    idle = idle_connections(server, 2)
    try:
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for conn in idle:
            assert conn.fp.read(1) == b""
        # The clients keep their end open until `finally`.
        assert server.wait_exit(timeout=60) == 0, server.errlog()
        stopped = time.monotonic() - started
        assert stopped < 1.5, f"the stop took {stopped:.1f} s (keepalive and graceful: 120 s)"
    finally:
        for conn in idle:
            conn.close()


def wait_marker(directory: Path, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (directory / name).exists():
        assert time.monotonic() < deadline, f"no {name} in {directory} after {timeout} s"
        time.sleep(0.01)


@kinds
def test_a_request_waiting_in_the_kernel_on_an_idle_connection_at_a_stop_is_answered(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """A keep-alive client sends its next request while the worker is busy (a sync worker in
    the app): at TERM that request is in the kernel, not on the wire. It is answered, with
    `Connection: close`, not dropped with the idle connections."""
    server = wsgid(SLEEP_APP, *kind_args(kind), "--keep-alive", "60", workers=1)
    with server.raw(timeout=30) as waiting, server.raw(timeout=30) as busy:
        assert waiting.request(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
        busy.send(b"GET /sleep?s=1&tag=busy HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_marker(workdir.markers, "started-busy")
        waiting.send(b"GET /pid?second HTTP/1.1\r\nHost: x\r\n\r\n")
        server.send_signal(signal.SIGTERM)
        assert busy.read_response().status == 200
        second = waiting.read_response()
        assert second.status == 200, server.errlog()
        if kind == "sync":  # the others read it, and may answer it, before the stop
            assert second.headers.get("Connection") == "close", second.headers
    assert server.wait_exit(timeout=60) == 0, server.errlog()


@kinds
def test_a_response_in_flight_at_a_stop_says_close_and_the_stop_waits_no_keepalive(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """The response being made when TERM comes announces `Connection: close` and its
    connection ends with it: the stop waits neither `keepalive` nor `graceful_timeout` for
    a connection that went idle after the stop began."""
    server = wsgid(
        SLEEP_APP, *kind_args(kind), "--keep-alive", "120", "--graceful-timeout", "120",
        workers=1,
    )  # fmt: skip
    with server.raw(timeout=60) as conn:
        conn.send(b"GET /sleep?s=1&tag=flight HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_marker(workdir.markers, "started-flight")
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        answer = conn.read_response()
        assert answer.status == 200, server.errlog()
        assert answer.headers.get("Connection") == "close", answer.headers
        assert conn.fp.read(1) == b""  # and the connection ends with it
    assert server.wait_exit(timeout=90) == 0, server.errlog()
    stopped = time.monotonic() - started
    assert stopped < 60, f"the stop took {stopped:.1f} s (keepalive and graceful: 120 s)"
