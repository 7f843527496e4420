"""One HTTPS connection of the epoll loop: an `ssl.SSLObject` over memory BIOs under `Connection`.

Owns: TLS on an accepted socket: the `SSLObject` made from the worker's context, the handshake
stepped as the loop finds the socket ready (never a blocking call: a client that stalls costs
this connection, bounded by header_timeout, never the worker or a pool thread), the mod_ssl
environ keys once it is done, decrypting what the client sent and encrypting what goes to it,
the close_notify on close, and handing the session to an app that takes the connection over
(`handover`: a `tls_socket.TLSSocket`). Only the loop makes these
(`ConnectionLoop._on_listener`), and only for a listener that serves HTTPS: this module, and
`ssl`, are never imported by a worker without one.

Design: the socket stays a plain non-blocking socket, read and written by `Connection` as any
other; OpenSSL only turns bytes into bytes (`ssl.MemoryBIO` in and out, as asyncio does).
bench/tls_io.py measured it against a non-blocking `ssl.SSLSocket` (docs/tls.md): as
cheap for small requests, about a fifth cheaper for a 16 KiB body, because one `recv` takes
every record the kernel has (an SSLSocket reads each record's header and body apart) and one
`send` writes every record of a response. It also makes the rules that bite an event loop
over OpenSSL disappear:

- Reads: each `receive` decrypts every complete record it was given, so no request is ever
  left inside OpenSSL while epoll waits for the kernel.
- Writes: the output queue holds ciphertext, which may be sent in any pieces: OpenSSL's rule
  that a write wanting to be retried must be retried with the same bytes never applies. A
  response's head and a body that fit in one record together are sealed as one record.
- `sendfile` is off: the listener's `wsgi.file_wrapper` reads and sends blocks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any, ClassVar, Final

from wsgid import tls
from wsgid.http.parser import RequestParser
from wsgid.workers.connection import (
    DONE,
    RECV_SIZE,
    WANT_READ,
    WANT_WRITE,
    Connection,
)

WANT_READ_ERROR: Final = ssl.SSLWantReadError
# The most plaintext one TLS record holds (RFC 8446 5.1, RFC 5246 6.2.1).
RECORD_SIZE: Final = 16384


class TLSConnection(Connection):
    """An HTTPS connection: TLS begins at `start_tls` (after a PROXY header, if any)."""

    __slots__ = ("context", "first", "incoming", "notified", "obj", "outgoing", "ragged")

    tls: ClassVar[bool] = True

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
        self.ragged = suppress_ragged_eofs
        self.handshaking = True
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj: ssl.SSLObject | None = None
        self.notified = False  # ours went (or cannot go)
        self.first = b""  # the client's first byte: a TLS record's type, or text

    def start_tls(self, early: bytes = b"") -> None:
        self.obj = self.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        if early:
            self.first = early[:1]
            self.incoming.write(early)

    def plain_text_sent(self) -> bool:
        # A request line begins with a method's first letter (A-Z: GET, DELETE, OPTIONS,
        # PRI of an HTTP/2 preface); a TLS record with its type byte (22 for a handshake).
        first = self.first
        return len(first) == 1 and 65 <= first[0] <= 90

    def cut(self) -> None:
        self.notified = True

    def handshake(self) -> int:
        obj = self.obj
        assert obj is not None
        try:
            raw = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            raw = None
        if raw is not None:
            if not raw:
                raise ConnectionResetError(errno.ECONNRESET, "closed during the handshake")
            if not self.first:
                self.first = raw[:1]
            self.incoming.write(raw)
        try:
            obj.do_handshake()
        except WANT_READ_ERROR:
            self._emit()
            return WANT_WRITE if self.out else WANT_READ
        except ssl.SSLError:
            self._emit_quietly()  # the alert that tells the client why
            raise
        self._emit()
        self.handshaking = False
        self.base = {**self.base, **tls.connection_environ(obj)}
        return DONE

    def receive(self) -> bytes | None:
        if self.ended:
            return b""
        try:
            raw = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            # Records may have come with the end of the handshake, in the same read.
            return self._decrypted() if self.incoming.pending and self.obj is not None else None
        if self.notified or self.obj is None:
            return raw  # lingering after our close: the loop drops what comes
        if not raw:
            # Records that came with the end of the handshake, before this FIN, are served
            # first, as a plain client's last bytes before its FIN are.
            pending = self._decrypted() if self.incoming.pending else None
            if pending:
                self.ended = True
                return pending
            if self.ragged or self.ended:
                return b""
            raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "the client closed without close_notify")
        self.incoming.write(raw)
        return self._decrypted()

    def _decrypted(self) -> bytes | None:
        """Every plaintext byte the records received so far hold; None if none is complete."""
        obj = self.obj
        assert obj is not None
        incoming = self.incoming
        chunks = []
        while True:
            try:
                chunk = obj.read(RECV_SIZE)
            except WANT_READ_ERROR:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:
                self.ended = True  # close_notify: what came before it still counts
                break
            chunks.append(chunk)
            # A read returns one record, whole (records hold at most 16 KiB): with no
            # ciphertext left there is no other one, and no call needs to raise to say so.
            if not incoming.pending:
                break
        if self.outgoing.pending:
            self._emit()  # what reading made OpenSSL say (a key update's answer)
        if chunks:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return b"" if self.ended else None

    def send(self, data: bytes, more: bytes = b"") -> None:
        if data or more:
            super().send(self._sealed(data, more))

    def send_last(self, data: bytes, more: bytes = b"") -> None:
        if data or more:
            super().send_last(self._sealed(data, more))

    def _sealed(self, data: bytes, more: bytes) -> bytes:
        """`data` then `more` as TLS records; as they are before TLS begins (a refused PROXY
        header's answer, which goes in plain text, as on a listener without TLS)."""
        obj = self.obj
        if obj is None:
            return data + more
        if more and data and len(data) + len(more) <= RECORD_SIZE:
            # One record, not two: each costs OpenSSL a fixed ~1 us (docs/performance.md),
            # far more than joining pieces this small.
            obj.write(data + more)
        else:
            if data:
                obj.write(data)
            if more:
                obj.write(more)
        return self.outgoing.read()

    def _emit(self) -> None:
        """Queue (or send) the ciphertext OpenSSL produced."""
        data = self.outgoing.read()
        if data:
            super().send(data)

    def _emit_quietly(self) -> None:
        with contextlib.suppress(OSError):  # a best effort on a connection about to close
            self._emit()

    def handover(self) -> object:
        """The connection as a socket for the app to take over: a `TLSSocket` over this
        session and a duplicate descriptor (the raw socket alone would carry ciphertext)."""
        obj = self.obj
        if obj is None or self.handshaking:
            return None
        from wsgid.workers.tls_socket import TLSSocket  # only apps that take over need it

        self.flush_blocking()  # what the loop queued for the client goes before the app's
        sock = socket.socket(fileno=os.dup(self.fd))
        sock.settimeout(None)
        return TLSSocket(sock, obj, self.incoming, self.outgoing, self._given_away)

    def _given_away(self) -> None:
        """The app used the session: its own close sends the close_notify, never ours."""
        self.notified = True

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
        obj = self.obj
        if self.handshaking or obj is None or self.out:
            return  # no session yet, or output the close would cut anyway
        with contextlib.suppress(ssl.SSLError):  # the client's close_notify is not waited for
            obj.unwrap()
        data = self.outgoing.read()
        if data:
            with contextlib.suppress(OSError):  # one small record, sent now or never
                self.sock.send(data)
