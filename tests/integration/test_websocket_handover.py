"""WebSocket libraries take the connection over (`environ["gunicorn.socket"]`), on every kind.

A real Flask-Sock app (tests/apps/websocket_app.py) is served; the client speaks WebSocket
with wsproto over a raw socket, so the test sees every byte that comes back:

- the upgrade is answered 101 by the library, messages are echoed, and its close comes back;
- after the takeover wsgid writes nothing to the connection (no response of its own after
  the library's close frame) and closes it; the access log shows the request as 101;
- while the WebSocket is open, the gthread and gevent workers serve other requests;
- the same over HTTPS (wss://): the library's socket speaks the connection's TLS session.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer
from support.tls import https_get, make_certs
from support.websocket import Client

APP = "websocket_app:app"


def echo_then_close(client: Client, get_plain: Callable[[], bytes] | None) -> None:
    """Upgrade, echo two messages, close; `get_plain` (None for sync, whose one worker is busy
    with the WebSocket) asks for another page meanwhile."""
    try:
        client.send(Request(host="127.0.0.1", target="/echo"))
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), (accepted, client.received)
        assert client.received.startswith(b"HTTP/1.1 101 "), client.received
        for text in ("hello", "wsgid " * 2000):  # the second spans several frames' reads
            client.send(TextMessage(data=text))
            assert client.text() == text
        if get_plain is not None:  # the worker serves others while the WebSocket is open
            assert get_plain() == b"plain"
        client.send(TextMessage(data="bye"))
        closing = client.next_event()
        assert isinstance(closing, CloseConnection), closing
        client.send(closing.response())  # the closing handshake's answer
        # After the library's close frame: the end of the connection, nothing of wsgid's.
        assert client.rest() == b""
    finally:
        client.sock.close()


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_flask_sock_echo_takes_the_connection_over(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--access-logfile", "-", workers=1)
    echo_then_close(Client(server.port), (lambda: server.get("/").body) if kind != "sync" else None)
    assert server.get("/").body == b"plain"
    server.wait_log('"GET /echo HTTP/1.1" 101', stream="stdout")
    assert "app.error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_flask_sock_echo_over_tls_takes_the_connection_over(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """The same over HTTPS: the library gets a socket that speaks the connection's TLS session
    (`TLSSocket`), and its close ends the session with close_notify."""
    certs = make_certs(workdir.root / "certs")
    tls = ["--certfile", str(certs.server), "--keyfile", str(certs.server_key)]
    server = wsgid(APP, *kind_args(kind), *tls, "--access-logfile", "-", workers=1, start=False)
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.check_hostname = False

    def get_plain() -> bytes:
        head, body = https_get(server.port, context)
        assert head.startswith(b"HTTP/1.1 200 "), head
        return body

    def answered() -> bool:
        try:
            return get_plain() == b"plain"
        except OSError:
            return False

    poll(answered, timeout=30, what="an HTTPS answer")
    echo_then_close(Client(server.port, tls=context), get_plain if kind != "sync" else None)
    assert get_plain() == b"plain"
    server.wait_log('"GET /echo HTTP/1.1" 101', stream="stdout")
    assert "app.error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()
