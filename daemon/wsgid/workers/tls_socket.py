"""An HTTPS connection handed over to the app, as a socket: `environ["gunicorn.socket"]` over TLS.

Owns: `TLSSocket`, what a WebSocket library (simple-websocket under Flask-Sock and
Flask-SocketIO) gets when it takes over an HTTPS connection. The connection's TLS session is
an `ssl.SSLObject` over memory BIOs (tls_connection.py), so there is no `ssl.SSLSocket` to
give; this object is one in the ways those libraries use a socket: `recv` decrypts, `send`
and `sendall` encrypt, `fileno` is the raw socket's (for a selector: it reports ciphertext),
`close` sends TLS's close_notify. Its raw socket is a duplicate descriptor made through the
`socket` module when the app asks for it, so under gevent or eventlet its waits are
cooperative, as the plain handover's are.

Libraries read in one thread (or greenlet) and write in another. OpenSSL must not see two
calls on one session at once, so every call into the session holds `_session`, never
across a wait for the network; `_sending` keeps the records of concurrent writers in the
order they were sealed.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

RECV_SIZE = 65536


class TLSSocket:
    """The socket-like end of a TLS session the app took over (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        session: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        on_use: Callable[[], None],
    ) -> None:
        self._sock = sock
        self._obj = session
        self._incoming = incoming
        self._outgoing = outgoing
        # Called once, at the first use: from then on the session is the app's, and wsgid
        # sends no close_notify of its own when it lets the connection go.
        self._on_use: Callable[[], None] | None = on_use
        self._session = threading.Lock()
        self._sending = threading.Lock()
        self._closed = False

    def _claim(self) -> None:
        if self._on_use is not None:
            self._on_use()
            self._on_use = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to `bufsize` bytes of plaintext, waiting for the client if none is decrypted;
        b"" once the client closed (with close_notify or without)."""
        self._claim()
        while True:
            with self._session:
                try:
                    data = self._obj.read(bufsize)
                except ssl.SSLWantReadError:
                    data = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""
                reply = self._outgoing.pending > 0  # a key update's answer, say
            if reply:
                self._send_sealed(b"")
            if data is not None:
                return data
            raw = self._sock.recv(RECV_SIZE)
            with self._session:
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()

    def send(self, data: bytes, flags: int = 0) -> int:
        self._claim()
        self._send_sealed(data)
        return len(data)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._claim()
        self._send_sealed(data)

    def _send_sealed(self, data: bytes) -> None:
        with self._sending:
            with self._session:
                if data:
                    self._obj.write(data)
                records = self._outgoing.read()
            if records:
                self._sock.sendall(records)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_use is None:  # used: the session is the app's to end
            with self._session, contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()  # queues close_notify; the client's is not waited for
            with contextlib.suppress(OSError):
                self._send_sealed(b"")
        self._sock.close()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def fileno(self) -> int:
        return self._sock.fileno()

    def pending(self) -> int:
        """Plaintext decrypted and not yet read (as `ssl.SSLSocket.pending`)."""
        with self._session:
            return self._obj.pending()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
