"""Flask-SocketIO, the typical app of the cooperative kinds, over WebSocket on gevent and
eventlet.

A real Flask-SocketIO app (tests/apps/socketio_app.py) in the worker's async mode; the
client speaks Engine.IO 4 / Socket.IO 5 over a WebSocket (wsproto over a raw socket):
the library answers the upgrade with 101 on the connection it took over, opens the
Engine.IO session, connects the default namespace and echoes an event; meanwhile the
worker serves plain requests, and after the client leaves nothing was logged as an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from support.server import WsgidServer
from support.websocket import Client

APP = "socketio_app:app"


class SocketIOClient(Client):
    """A minimal Socket.IO client over one WebSocket: text packets in and out."""

    def packet(self) -> str:
        """The next text packet, whole (Engine.IO pings are answered on the way)."""
        while True:
            data = self.text()
            if data != "2":  # not a ping
                return data
            self.send(TextMessage(data="3"))


@pytest.mark.parametrize("kind", ["gevent", "eventlet"])
def test_a_flask_socketio_echo_over_websocket(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = wsgid(APP, "-k", kind, "--access-logfile", "-", workers=1)
    assert server.get("/mode").body == kind.encode()
    client = SocketIOClient(server.port)
    try:
        client.send(Request(host="127.0.0.1", target="/socket.io/?EIO=4&transport=websocket"))
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), (accepted, client.received)
        assert client.received.startswith(b"HTTP/1.1 101 "), client.received
        opened = client.packet()
        assert opened.startswith("0") and "sid" in json.loads(opened[1:]), opened
        client.send(TextMessage(data="40"))  # connect to the default namespace
        connected = client.packet()
        assert connected.startswith("40") and "sid" in json.loads(connected[2:]), connected
        for text in ("hello", "wsgid " * 2000):
            # "4" an Engine.IO message, "2" a Socket.IO event: ["name", data]
            client.send(TextMessage(data="42" + json.dumps(["echo", text])))
            assert client.packet() == "42" + json.dumps(["echo", text], separators=(",", ":"))
        assert server.get("/").body == b"plain"  # the worker serves on meanwhile
        client.send(CloseConnection(code=1000))
    finally:
        client.sock.close()
    assert server.get("/").body == b"plain"
    server.wait_log('/socket.io/?EIO=4&transport=websocket HTTP/1.1" 101', stream="stdout")
    assert "app.error" not in server.errlog(), server.errlog()
    assert "Traceback" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()
