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

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer
from support.tls import https_get, make_certs
from support.websocket import Client, echo_then_close

APP = "websocket_app:app"


# The second message spans several frames' reads.
TEXTS = ("hello", "wsgid " * 2000)


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_flask_sock_echo_takes_the_connection_over(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), "--access-logfile", "-", workers=1)
    # sync: its one worker is busy with the WebSocket, so nothing is asked meanwhile.
    plain = (lambda: server.get("/").body == b"plain") if kind != "sync" else None
    echo_then_close(Client(server.port), "/echo", TEXTS, plain)
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
    plain = (lambda: get_plain() == b"plain") if kind != "sync" else None
    echo_then_close(Client(server.port, tls=context), "/echo", TEXTS, plain)
    assert get_plain() == b"plain"
    server.wait_log('"GET /echo HTTP/1.1" 101', stream="stdout")
    assert "app.error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()
