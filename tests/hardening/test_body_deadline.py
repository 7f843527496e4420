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
HEAD = b"POST /pid HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"


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
