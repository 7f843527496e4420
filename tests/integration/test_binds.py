"""Which clients an IPv6 wildcard bind takes.

- `[::]:PORT` alone takes IPv4 clients too (a dual-stack socket), as gunicorn's does: it was
  IPv6-only, and a gunicorn user's `--bind [::]:8000` refused every IPv4 client.
- `0.0.0.0:PORT` and `[::]:PORT` side by side (nginx's way to write both) both bind: the
  IPv6 socket is then IPv6-only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from support.client import poll
from support.server import WsgidServer, free_port


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def status_over(family: socket.AddressFamily, host: str, port: int) -> int | None:
    """The status of a GET to `host`:`port`, or None if the connection is refused."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect((host, port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except ConnectionRefusedError:
        return None
    return int(head.split()[1])


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")


def served_over_both(wsgid: Callable[..., WsgidServer], *binds: str) -> None:
    """A server with `binds` (PORT in them: a free port) answers 127.0.0.1 and ::1 alike."""
    port = free_port()
    args = [a for b in binds for a in ("--bind", b.replace("PORT", str(port)))]
    server = wsgid("sleep_app:app", *args, bind_tcp=False, start=False)
    poll(
        lambda: status_over(socket.AF_INET6, "::1", port) == 200,
        timeout=30,
        what="an answer over IPv6",
    )
    assert status_over(socket.AF_INET, "127.0.0.1", port) == 200
    assert server.stop() == 0, server.errlog()


@needs_ipv6
def test_an_ipv6_wildcard_bind_takes_ipv4_clients_too(wsgid: Callable[..., WsgidServer]) -> None:
    served_over_both(wsgid, "[::]:PORT")


@needs_ipv6
def test_ipv4_and_ipv6_wildcards_on_one_port_both_bind(
    wsgid: Callable[..., WsgidServer],
) -> None:
    served_over_both(wsgid, "0.0.0.0:PORT", "[::]:PORT")
