"""A small request body must arrive within `header_timeout` of the end of its head.

Bodies up to small_body_size are read by the loop before the app is called. They used to
have only an idle timeout, so clients trickling one byte every few seconds held a
worker_connections slot each, forever (1,010 such connections held every slot). Now such a
body gets 408 and the connection is closed, like a slow head, and the slots come back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from support.client import poll
from support.kinds import kind_args
from support.load import socket_inodes
from support.server import WsgidServer

APP = "sleep_app:app"
HEADER_TIMEOUT = 3.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD = b"POST /pid HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
# The same head from a client that waits for 100 Continue, to a route that reads the body.
EXPECTING = b"POST /pid?read=1" + HEAD[9:].replace(
    b"Content-Length", b"Expect: 100-continue\r\nContent-Length"
)


class Trickler:
    """Clients that send HEAD and then one body byte per second each, until stopped or cut."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        for sock in self.socks:
            sock.sendall(HEAD)
        self.head_sent = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for sock in self.socks:
                # Cut by the server: what it answered is read by the test.
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


def accepted(port: int, client_ports: set[int], pid: int) -> bool:
    """Whether process `pid` holds the server side of every connection from `client_ports`."""
    inodes = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = row.split()
        local, remote = cols[1], cols[2]
        if (
            int(local.rsplit(":", 1)[1], 16) == port
            and int(remote.rsplit(":", 1)[1], 16) in client_ports
        ):
            inodes.add(int(cols[9]))
    return len(inodes) == len(client_ports) and inodes <= socket_inodes(pid)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def read_head(sock: socket.socket) -> bytes:
    """One response head, byte by byte (nothing after it is consumed)."""
    sock.settimeout(10)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"closed after {head!r}"
        head += chunk
    return head


def test_a_trickling_small_body_gets_408_after_the_header_timeout(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--header-timeout", str(HEADER_TIMEOUT), workers=1)
    trickler = Trickler(server.port, 1)
    try:
        answer = read_until_closed(trickler.socks[0], timeout=HEADER_TIMEOUT + 15)
        took = time.monotonic() - trickler.head_sent
    finally:
        trickler.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    # The 408 comes at the header timeout (the sweep runs once a second); the close follows
    # it after the lingering drain (2 s).
    assert HEADER_TIMEOUT - 0.5 < took < HEADER_TIMEOUT + 6, f"closed after {took:.1f}s"


def test_a_client_awaiting_100_continue_that_never_sends_its_body_holds_no_worker(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """`Expect: 100-continue` used to get the app called at once, to wait in the worker for
    a body it then asked for: a client that never sent it held a sync worker for the whole
    `timeout` (30 s), and got its 408 only then, the slow-body rule undone by one header. A
    small body is now asked for at once (as gunicorn does) and read by the loop under the
    body deadline."""
    server = wsgid(APP, *kind_args(kind), "--header-timeout", str(HEADER_TIMEOUT), workers=1)
    with socket.create_connection(("127.0.0.1", server.port)) as silent:
        silent.sendall(EXPECTING)
        sent = time.monotonic()
        assert read_head(silent) == CONTINUE
        # Another client is served while the silent one's request is pending.
        resp = server.get("/pid", timeout=10)
        assert resp.status == 200
        silent.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            early = silent.recv(65536)
            raise AssertionError(f"the silent client's answer came first: {early[:200]!r}")
        answer = read_until_closed(silent, timeout=HEADER_TIMEOUT + 15)
        took = time.monotonic() - sent
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert took < HEADER_TIMEOUT + 6, f"closed after {took:.1f}s"
    # The body, when it does come, reaches the app whole.
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(EXPECTING)
        assert read_head(client) == CONTINUE
        client.sendall(b"x" * 100 + b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        replies = read_until_closed(client, timeout=10)
    assert replies.count(b"HTTP/1.1 200 OK") == 2 and b'"read": 100' in replies, replies


def test_tricklers_filling_every_connection_slot_are_cut_and_a_client_is_served_again(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    slots = 20
    server = wsgid(
        APP,
        *kind_args(kind),
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--worker-connections",
        str(slots),
        workers=1,
    )
    (worker,) = server.wait_workers(1)
    trickler = Trickler(server.port, slots)
    ports = {sock.getsockname()[1] for sock in trickler.socks}
    try:
        poll(
            lambda: accepted(server.port, ports, worker),
            timeout=10,
            what=f"the worker holding {slots} trickling connections",
        )
        started = time.monotonic()
        resp = server.get("/pid", timeout=HEADER_TIMEOUT + 15)
        took = time.monotonic() - started
    finally:
        trickler.close()
    assert resp.status == 200
    assert took < HEADER_TIMEOUT + 5, f"the client was served after {took:.1f}s"
