"""Persistent connections: reuse, the keep-alive idle timeout, HTTP/1.0 close."""

from __future__ import annotations

import json
from collections.abc import Callable

from support.server import WsgidServer

SLEEP_APP = "sleep_app:app"


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
