"""A WebSocket client for the tests: wsproto over a raw socket, keeping every byte it got.

The tests that serve WebSocket apps (Flask-Sock, Flask-SocketIO) speak through it, so they
see exactly what the server sent on the connection, the library's frames and anything after.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Sequence

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Request, TextMessage


class Client:
    """One WebSocket client connection, and every byte the server sent on it."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        """Connect to 127.0.0.1:`port`, over TLS with `tls` (wss://)."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = tls.wrap_socket(raw) if tls is not None else raw
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.received = b""

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def next_event(self) -> Event:
        """The next event: one already received (a read may bring several), or read more."""
        while True:
            for event in self.ws.events():
                return event
            data = self.sock.recv(65536)
            assert data, f"the server closed the connection; it sent {self.received!r}"
            self.received += data
            self.ws.receive_data(data)

    def text(self) -> str:
        """The next text message, whole (it may come in several frames)."""
        data = ""
        while True:
            event = self.next_event()
            assert isinstance(event, TextMessage), event
            data += event.data
            if event.message_finished:
                return data

    def rest(self) -> bytes:
        """What the server sends until it closes the connection."""
        rest = b""
        while chunk := self.sock.recv(65536):
            rest += chunk
        return rest


def echo_then_close(
    client: Client, target: str, texts: Sequence[str], meanwhile: Callable[[], bool] | None
) -> None:
    """Upgrade at `target`, have each of `texts` echoed, send "bye" and answer the server's
    close; `meanwhile` (None: not asked) must answer True while the WebSocket is open (the
    worker serves others). After the server's close frame nothing more may come."""
    try:
        client.send(Request(host="127.0.0.1", target=target))
        accepted = client.next_event()
        assert isinstance(accepted, AcceptConnection), (accepted, client.received)
        assert client.received.startswith(b"HTTP/1.1 101 "), client.received
        for text in texts:
            client.send(TextMessage(data=text))
            assert client.text() == text
        if meanwhile is not None:
            assert meanwhile()
        client.send(TextMessage(data="bye"))
        closing = client.next_event()
        assert isinstance(closing, CloseConnection), closing
        client.send(closing.response())  # the closing handshake's answer
        assert client.rest() == b""
    finally:
        client.sock.close()
