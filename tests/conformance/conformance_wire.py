"""A strict raw-socket HTTP/1.1 client for the conformance suite (tests/conformance only).

Owns: sending request bytes exactly as written (whole, or one byte per `send()` with
TCP_NODELAY) and reading responses byte-exactly, so the suite sees what the server put on the
wire rather than what a forgiving client library makes of it. Response framing follows
RFC 9112 §6.3 from the client's side: no content for HEAD, 1xx, 204 and 304; chunked; a
Content-Length; else up to the end of the connection.

The transport is plain TCP, or TLS when `connect` is given an `ssl.SSLContext` (the socket
is wrapped, the handshake done, the server verified as 127.0.0.1). Over TLS each `sendall()`
is one TLS record (OpenSSL writes a record per SSL_write of up to 16 KiB), so one byte per
`send()` is one byte per record, and a whole case of under 16 KiB is one record; the client's
end of data is TLS's close_notify instead of a TCP half-close (`shut_write`).

Every wait is bounded by the socket timeout: a server that stalls makes `Stalled` raise
instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 5.0
TLS_SERVER_NAME = "127.0.0.1"  # what the test certificate names (support/tls.py); no SNI


class Stalled(AssertionError):
    """The server sent nothing more within the timeout."""


class Malformed(AssertionError):
    """The server's bytes are not a valid HTTP/1.1 response."""


@dataclass
class Reply:
    """One response as it came off the wire."""

    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    head: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict), data
        return data

    def summary(self) -> str:
        text = f"{self.status} {self.reason}"
        with contextlib.suppress(ValueError, AssertionError, UnicodeDecodeError):
            data = self.json()
            if "env" in data:
                return f"{text} app saw {data['env']} body={data['body']!r}"
        return f"{text} body={self.body[:120]!r}"


class Wire:
    """One client connection."""

    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False  # the server reset the connection
        self.timeout = timeout
        sock.settimeout(timeout)

    @classmethod
    def connect(
        cls, port: int, timeout: float = DEFAULT_TIMEOUT, tls: ssl.SSLContext | None = None
    ) -> Wire:
        """A connection to 127.0.0.1:`port`: plain TCP, or TLS through `tls` (handshake done)."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=TLS_SERVER_NAME)
            except BaseException:
                sock.close()
                raise
        return cls(sock, timeout)

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close with RST (SO_LINGER 0): no TIME_WAIT left behind by thousands of fuzz runs."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # sending

    def send(self, data: bytes, bytewise: bool = False) -> bool:
        """Send `data`; False if the server closed the connection before it all went out."""
        try:
            if not bytewise:
                self.sock.sendall(data)
                return True
            for i in range(len(data)):
                self.sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return False
        except ssl.SSLEOFError:  # OpenSSL's word for EPIPE when it lost the errno
            return False
        return True

    def shut_write(self) -> None:
        """End the client's data and keep reading: a TCP half-close (FIN), or over TLS a
        close_notify alert (RFC 8446 §6.1) on a connection still open both ways.

        `SSLSocket.shutdown(SHUT_WR)` would send a FIN under the TLS layer without ending it,
        and `unwrap()` on a blocking socket waits for the server's close_notify, so the socket
        is made non-blocking for `unwrap()`: OpenSSL's first SSL_shutdown sends close_notify,
        the second finds nothing to read yet and raises SSLWantReadError, and the TLS session
        stays usable for reading the server's reply (SSL_read after a sent close_notify).
        Only for a server with nothing to send yet (a truncated request): application data
        that arrived before that second SSL_shutdown would be dropped by OpenSSL.
        """
        if not isinstance(self.sock, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            return
        self.sock.setblocking(False)
        try:
            self.sock.unwrap()
        except ssl.SSLWantReadError:
            pass
        finally:
            self.sock.settimeout(self.timeout)

    # receiving

    def _recv(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise Stalled(f"no bytes from the server within {self.timeout}s") from None
        except ConnectionResetError:
            self.reset = True
            data = b""
        except ssl.SSLZeroReturnError:
            # The server's close_notify once ours was sent (`shut_write`); before that,
            # Python's recv() returns b"" for it.
            data = b""
        except ssl.SSLError as exc:  # not TLS records, or an alert from the server
            raise Malformed(f"TLS error reading the response: {exc}") from None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            idx = self.buf.find(marker)
            if idx >= 0:
                out = bytes(self.buf[: idx + len(marker)])
                del self.buf[: idx + len(marker)]
                return out
            if len(self.buf) > limit:
                raise Malformed(f"no {marker!r} within {limit} bytes: {bytes(self.buf[:200])!r}")
            if not self._recv():
                raise EOFError(f"connection closed inside a response: {bytes(self.buf)!r}")

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._recv():
                raise EOFError(f"connection closed {n - len(self.buf)} bytes short of a body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_reply(self, method: str = "GET") -> Reply:
        """The next response; EOFError if the connection ends before its first byte."""
        if not self.buf and not self._recv():
            raise EOFError("connection closed with no response")
        head = self._until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Malformed(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip(b" \t"):
                raise Malformed(f"bad response header line {line!r}")
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        reply = Reply(
            status=status,
            reason=(parts[2] if len(parts) > 2 else b"").decode("latin-1"),
            version=parts[0].decode("latin-1"),
            headers=headers,
            body=b"",
            head=head,
        )
        reply.body = self._read_body(reply, method)
        return reply

    def _read_body(self, reply: Reply, method: str) -> bytes:
        if method == "HEAD" or reply.status < 200 or reply.status in (204, 304):
            return b""
        te = reply.all("Transfer-Encoding")
        if te:
            if te[-1].split(",")[-1].strip().lower() != "chunked":
                raise Malformed(f"response Transfer-Encoding {te!r}")
            return self._read_chunked()
        lengths = reply.all("Content-Length")
        if lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise Malformed(f"response Content-Length {lengths!r}")
            return self._exactly(int(lengths[0]))
        while self._recv():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self._until(b"\r\n", 4096)[:-2]
            size_text = line.split(b";", 1)[0]
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Malformed(f"bad chunk size line {line!r}") from None
            if size == 0:
                while self._until(b"\r\n", 65536) != b"\r\n":
                    pass  # trailer fields
                return bytes(out)
            out += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise Malformed("chunk data not followed by CRLF")

    def state_after(self, wait: float | None = None) -> str:
        """'eof' if the server closed with nothing more sent, 'open' if it sent nothing within
        `wait` seconds, else 'extra bytes: ...'."""
        if self.buf:
            return f"extra bytes: {bytes(self.buf[:200])!r}"
        old = self.sock.gettimeout()
        self.sock.settimeout(self.timeout if wait is None else wait)
        try:
            if self._recv():
                return f"extra bytes: {bytes(self.buf[:200])!r}"
        except Stalled:
            return "open"
        finally:
            self.sock.settimeout(old)
        return "eof"
