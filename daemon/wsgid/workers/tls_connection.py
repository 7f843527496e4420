"""One HTTPS connection of the epoll loop: a non-blocking `ssl.SSLSocket` under `Connection`.

Owns: wrapping an accepted socket in the worker's TLS context, stepping the handshake as
the loop finds the socket ready (never a blocking call: a client that stalls costs this
connection, bounded by header_timeout, never the worker or a pool thread), the mod_ssl
environ keys once it is done, reads that hand over everything OpenSSL decrypted, OpenSSL's
retry rules on writes, and the close_notify on close. Only the loop makes these
(`ConnectionLoop._on_listener`), and only for a listener that serves HTTPS: this module,
and `ssl`, are never imported by a worker without one.

Why a wrapped socket and not `MemoryBIO`/`SSLObject`: OpenSSL then reads and writes the
descriptor itself, with no ciphertext copied through Python; bench/tls_io.py measures the
two (docs/tls.md has the numbers). What the BIO design would have made easy is kept:

- Reads: OpenSSL reads one record at a time (no read-ahead) and a record holds at most
  16 KiB, so a 64 KiB read leaves nothing decrypted behind, and level-triggered epoll
  reports the records still in the kernel. `receive` still drains `pending()` whatever is
  left, so a request can never be stranded inside OpenSSL.
- Writes: SSL_write either takes all of a buffer or nothing (no partial writes) and must be
  retried with the same bytes after a want; the output queue keeps a chunk whole until
  it went, and Python allows the retry to be another object with the same bytes.
- `sendfile` is off: the listener's `wsgi.file_wrapper` reads and sends blocks.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

from wsgid import tls
from wsgid.http.parser import RequestParser
from wsgid.workers.connection import (
    DONE,
    RECV_SIZE,
    WANT_READ,
    WANT_WRITE,
    Connection,
)

WANT_READ_ERROR = ssl.SSLWantReadError
WANT_WRITE_ERROR = ssl.SSLWantWriteError


class TLSConnection(Connection):
    """An HTTPS connection: its socket becomes an `ssl.SSLSocket` at `start_tls`."""

    __slots__ = ("context", "notified", "ragged_eofs")

    tls: ClassVar[bool] = True
    WOULD_BLOCK: ClassVar[tuple[type[OSError], ...]] = (
        BlockingIOError,
        InterruptedError,
        ssl.SSLWantReadError,
        ssl.SSLWantWriteError,
    )

    def __init__(
        self,
        sock: socket.socket,
        parser: RequestParser,
        base: dict[str, Any],
        io_timeout: float,
        deadline: Callable[[], float],
        context: ssl.SSLContext,
        suppress_ragged_eofs: bool,
    ) -> None:
        super().__init__(sock, parser, base, io_timeout, deadline)
        self.context = context
        self.ragged_eofs = suppress_ragged_eofs
        self.handshaking = True
        self.notified = False  # our close_notify went (or cannot go)

    def start_tls(self) -> None:
        """Wrap the socket (after its PROXY header, if any): the handshake can begin."""
        self.sock = self.context.wrap_socket(
            self.sock,
            server_side=True,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=self.ragged_eofs,
        )

    def handshake(self) -> int:
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except WANT_READ_ERROR:
            return WANT_READ
        except WANT_WRITE_ERROR:
            return WANT_WRITE
        self.handshaking = False
        self.base = {**self.base, **tls.connection_environ(sock)}
        return DONE

    def receive(self) -> bytes | None:
        sock = self.sock
        try:
            data = sock.recv(RECV_SIZE)
        except (WANT_READ_ERROR, BlockingIOError, InterruptedError):
            return None
        except WANT_WRITE_ERROR:
            self.read_wants_write = True
            return None
        if data and isinstance(sock, ssl.SSLSocket):
            while sock.pending():
                try:
                    more = sock.recv(RECV_SIZE)
                except WANT_READ_ERROR:
                    break
                if not more:
                    break
                data += more
        return data

    def waits_for(self, exc: OSError, event: int) -> int:
        if isinstance(exc, WANT_WRITE_ERROR):
            return select.POLLOUT
        if isinstance(exc, WANT_READ_ERROR):
            return select.POLLIN
        return event

    def shutdown_write(self) -> None:
        self._notify()
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._notify()
        self.sock.close()

    def _notify(self) -> None:
        """Send TLS's close_notify once, so that the client can tell our close from a cut."""
        if self.notified:
            return
        self.notified = True
        sock = self.sock
        if self.handshaking or not isinstance(sock, ssl.SSLSocket):
            return
        # It goes out at once; the client's own close_notify is not waited for (the
        # want raised for it is ignored), nor is a connection already gone told anything.
        with contextlib.suppress(OSError, ValueError):
            sock.unwrap()
