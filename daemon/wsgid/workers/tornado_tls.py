"""A detached HTTPS connection of the tornado worker: tornado's `IOStream` over the TLS session
wsgid's handshake made.

Owns: `TLSStream`, what `TornadoExchange.detach` gives a handler that switched protocols
(tornado's `WebSocketHandler`) on an HTTPS listener. The connection's session is an
`ssl.SSLObject` on memory BIOs (tls_connection.py), and tornado's own `SSLIOStream` needs an
`ssl.SSLSocket`, so this stream does the record I/O itself, by tornado's two hooks
(`read_from_fd`, `write_to_fd`) and its write-readiness rule (`writing`, `_handle_write`).
Imported only when such a connection is detached.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from tornado import ioloop
from tornado.iostream import IOStream

from wsgid.workers.connection import RECV_SIZE

# At most this much of tornado's write buffer is sealed per write: what waits here for the
# client stays bounded (tornado calls again for the rest).
SEAL_AT_ONCE = 256 * 1024


class TLSStream(IOStream):
    """A detached HTTPS connection as tornado's handlers use it: an `IOStream` over the
    connection's own TLS session (an `ssl.SSLObject` on memory BIOs, tls_connection.py),
    since tornado's `SSLIOStream` needs an `ssl.SSLSocket`.

    Reads decrypt what the incoming BIO holds before they read the socket, so a record
    already received is never left behind while the IOLoop waits. A write seals its bytes
    at once (up to `SEAL_AT_ONCE`); ciphertext the socket does not take waits here
    (`cipher`) and goes first when the socket is writable, and while any waits the stream
    asks the IOLoop for writability (`writing`), as tornado does for its own write buffer.
    """

    def __init__(
        self,
        sock: socket.socket,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        cipher: bytes,
    ) -> None:
        super().__init__(sock)
        self.obj = obj
        self.incoming = incoming
        self.outgoing = outgoing
        self.cipher = bytearray(cipher)  # sealed, not sent yet

    def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
        obj = self.obj
        while True:
            try:
                # With a buffer, read() fills it and returns the count (typeshed says bytes).
                count: int = obj.read(len(buf), buf)  # type: ignore[assignment]
            except ssl.SSLWantReadError:
                try:
                    raw = self.socket.recv(RECV_SIZE)
                except BlockingIOError:
                    return None
                if not raw:
                    return 0  # the end of the connection: tornado closes the stream
                self.incoming.write(raw)
                continue
            except ssl.SSLZeroReturnError:
                return 0  # the client's close_notify
            if self.outgoing.pending:
                self._seal_queued()  # what reading made OpenSSL say (a key update's answer)
            return count

    def write_to_fd(self, data: memoryview) -> int:
        if self.cipher and not self._send_cipher():
            return 0  # tornado keeps `data` and retries once the socket is writable
        count = self.obj.write(data[:SEAL_AT_ONCE])
        self._seal_queued()
        return count

    def writing(self) -> bool:
        return bool(self.cipher) or super().writing()

    def _handle_write(self) -> None:
        if self.cipher:
            try:
                if not self._send_cipher():
                    return
            except OSError as exc:
                self.close(exc_info=exc)
                return
        super()._handle_write()

    def _seal_queued(self) -> None:
        """Queue what OpenSSL produced and send what the socket takes now."""
        self.cipher += self.outgoing.read()
        if not self._send_cipher():
            self._add_io_state(ioloop.IOLoop.WRITE)

    def _send_cipher(self) -> bool:
        """Send queued ciphertext without blocking; True once none waits."""
        cipher = self.cipher
        try:
            sent = self.socket.send(cipher)
        except BlockingIOError:
            return False
        del cipher[:sent]
        return not cipher

    def close_fd(self) -> None:
        with contextlib.suppress(ssl.SSLError):  # the client's close_notify is not waited for
            self.obj.unwrap()
        self.cipher += self.outgoing.read()
        with contextlib.suppress(OSError):  # one small record, sent now or never
            self._send_cipher()
        super().close_fd()
