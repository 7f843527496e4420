"""WebSocket libraries take the connection over (`environ["gunicorn.socket"]`), on every kind.

A real Flask-Sock app (tests/apps/websocket_app.py) is served; the client speaks WebSocket
with wsproto over a raw socket, so the test sees every byte that comes back:

- the upgrade is answered 101 by the library, messages are echoed, and its close comes back;
- after the takeover wsgid writes nothing to the connection (no response of its own after
  the library's close frame) and closes it; the access log shows the request as 101;
- while the WebSocket is open, the gthread and gevent workers serve other requests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from support.kinds import WORKER_KINDS, kind_args
from support.server import WsgidServer
from support.websocket import Client

APP = "websocket_app:app"


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_flask_sock_echo_takes_the_connection_over(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--access-logfile", "-", workers=1)
    client = Client(server.port)
    try:
        client.send(Request(host="127.0.0.1", target="/echo"))
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), (accepted, client.received)
        assert client.received.startswith(b"HTTP/1.1 101 "), client.received
        for text in ("hello", "wsgid " * 2000):  # the second spans several frames' reads
            client.send(TextMessage(data=text))
            assert client.text() == text
        if kind != "sync":  # one sync worker is busy with the WebSocket; the others are not
            assert server.get("/").body == b"plain"
        client.send(TextMessage(data="bye"))
        closing = client.next_event()
        assert isinstance(closing, CloseConnection), closing
        client.send(closing.response())  # the closing handshake's answer
        # After the library's close frame: the end of the connection, nothing of wsgid's.
        assert client.rest() == b""
    finally:
        client.sock.close()
    assert server.get("/").body == b"plain"
    server.wait_log('"GET /echo HTTP/1.1" 101', stream="stdout")
    assert "app.error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()
