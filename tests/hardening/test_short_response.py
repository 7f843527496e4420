"""A body that does not match the application's own Content-Length is logged, and framed safely.

- Shorter: the client gets the bytes there are and then the end of the connection (never a
  kept-alive connection it would wait on, or read the next response from), and the error log
  gets `app.response_short` with the declared length and the bytes sent.
- Longer: the client gets exactly Content-Length bytes and the connection goes on (the
  message is well-formed); the error log gets `app.response_long` with what the app gave.

For a one-item list (sent with the head in one go) and a generator (sent as it yields), on
every worker kind.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from support.kinds import kind_args
from support.server import WsgidServer

APP = "misbehaving_app:app"


def request(path: str) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: example.org\r\n\r\n"


def read_reply(sock: socket.socket, buffer: bytearray) -> tuple[dict[str, str], bytes, bool]:
    """One response: its fields, its body (up to Content-Length or EOF), and whether EOF came."""
    eof = False
    while b"\r\n\r\n" not in buffer and not eof:
        chunk = sock.recv(65536)
        buffer += chunk
        eof = not chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    found = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    length = int(found["content-length"])
    body = bytearray(rest)
    while len(body) < length and not eof:
        chunk = sock.recv(65536)
        body += chunk
        eof = not chunk
    buffer[:] = body[length:]
    return found, bytes(body[:length]), eof


def eof_follows(sock: socket.socket) -> bool:
    """Whether the server closes the connection now (within the socket's timeout)."""
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize("mode", ["list", "gen"])
def test_a_body_shorter_than_its_content_length_is_logged_and_the_connection_closed(
    wsgid: Callable[..., WsgidServer], kind: str, mode: str
) -> None:
    server = wsgid(APP, *kind_args(kind), workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request(f"/length?declared=5000&sent=1500&mode={mode}"))
        buffer = bytearray()
        found, body, eof = read_reply(sock, buffer)
        assert found["content-length"] == "5000"
        assert body == b"x" * 1500
        assert eof or eof_follows(sock), "the connection must end after a short body"
    text = server.wait_log("app.response_short")
    line = next(x for x in text.splitlines() if "app.response_short" in x)
    assert "[error]" in line
    for part in ("method=GET", "path=/length", "content_length=5000", "bytes_sent=1500"):
        assert part in line, line


@pytest.mark.parametrize("mode", ["list", "gen"])
def test_a_body_longer_than_its_content_length_is_cut_there_logged_and_the_connection_kept(
    wsgid: Callable[..., WsgidServer], kind: str, mode: str
) -> None:
    server = wsgid(APP, *kind_args(kind), workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request(f"/length?declared=10&sent=3000&mode={mode}"))
        buffer = bytearray()
        found, body, eof = read_reply(sock, buffer)
        assert (found["content-length"], body, eof) == ("10", b"x" * 10, False)
        sock.sendall(request("/next"))  # the same connection goes on
        found, body, _ = read_reply(sock, buffer)
        assert body == b"ok"
    text = server.wait_log("app.response_long")
    line = next(x for x in text.splitlines() if "app.response_long" in x)
    assert "[warning]" in line
    for part in ("path=/length", "content_length=10", "bytes_given=3000"):
        assert part in line, line


def test_a_whole_body_logs_no_length_mismatch(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = wsgid(APP, *kind_args(kind), workers=1)
    for mode in ("list", "gen"):
        assert server.get(f"/length?declared=2500&sent=2500&mode={mode}").status == 200
    # One worker serves in order: once this short one is logged, the whole ones were done.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request("/length?declared=10&sent=5"))
        read_reply(sock, bytearray())
    text = server.wait_log("app.response_short")
    assert text.count("app.response_") == 1, text
