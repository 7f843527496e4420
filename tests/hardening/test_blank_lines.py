"""Blank lines between requests are not activity: they cannot keep a connection forever.

RFC 9112 §2.2 lets a server ignore empty lines received before a request line, and llhttp
does. Every read used to count as activity, so a client sending a bare CRLF every second
never started a head (no `header_timeout`) and never went idle (no keep-alive timeout): it
held a `worker_connections` slot for as long as it liked. Now such bytes leave the idle
clock alone, and the connection is closed at its keep-alive timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from support.kinds import kind_args
from support.server import WsgidServer

APP = "sleep_app:app"
KEEPALIVE = 2.0
INTERVAL = 0.5  # a CRLF this often: well inside the keep-alive timeout


def crlf_until_closed(sock: socket.socket, limit: float) -> float:
    """Send CRLF every INTERVAL until the server closes; how long it took (or `limit`)."""
    started = time.monotonic()
    closed = threading.Event()

    def reader() -> None:
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        closed.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while not closed.wait(INTERVAL) and time.monotonic() - started < limit:
            try:
                sock.send(b"\r\n")
            except OSError:
                break
        closed.wait(5)
        return time.monotonic() - started
    finally:
        sock.close()
        thread.join(5)


def test_a_client_sending_only_blank_lines_is_closed_at_the_keep_alive_timeout(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--keep-alive", str(KEEPALIVE), workers=1)
    took = crlf_until_closed(server.connect(), limit=KEEPALIVE + 20)
    # The sweep runs once a second; the old code kept it open until the client gave up.
    assert took < KEEPALIVE + 5, f"still open after {took:.1f}s of blank lines"


def test_blank_lines_before_a_request_are_still_ignored_and_it_is_served(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--keep-alive", str(KEEPALIVE), workers=1)
    with server.raw() as conn:
        conn.send(b"\r\n\r\n")
        reply = conn.request(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.status == 200, reply
