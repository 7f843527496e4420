"""Bytes to request heads and body bytes, with llhttp (httptools) doing the lexing.

Owns: the per-connection `RequestParser`, the `Request` record it produces and
the size limits on the head (request line, field count, field size, whole head).
Every semantic rule about what a valid request is lives in `policy.py`, which
this module calls once a head is complete; this module only lexes and counts.

Theory of operation: llhttp parses incrementally and calls back per URL piece,
per header, per body piece and at message boundaries. Complete heads are queued
on `ready` as soon as they end (so a large body can stream to the app while it
is still arriving); body bytes are appended to the request they belong to, so
pipelined requests never see each other's bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import httptools

from wsgid.http import policy
from wsgid.http.errors import BadRequest, ProtocolError

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
# RFC 9112 §2.3: wsgid speaks HTTP/1.1 and answers HTTP/1.0 clients.
_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}


# gunicorn's ceiling on limit_request_fields, also what 0 means there.
MAX_FIELDS = 32768


@dataclass(frozen=True, slots=True)
class Limits:
    """Head limits; 0 means unlimited (request line, field size) or the
    32768 ceiling (field count), as in gunicorn."""

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190

    @property
    def head(self) -> int:
        """Bytes a head may take before it is refused, whatever its shape.

        llhttp buffers a header value until it ends, so without this bound a
        client could grow one value forever.
        """
        line = self.request_line or 65536
        fields = min(self.fields or MAX_FIELDS, MAX_FIELDS)
        size = self.field_size or 65536
        return min(line + fields * (size + 4) + 4, 64 * 1024 * 1024)


class Request:
    """One parsed request: its head, and its body bytes as they arrive."""

    __slots__ = (
        "body",
        "body_complete",
        "body_received",
        "chunked",
        "content_length",
        "discard_body",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.path = b""
        self.query = b""
        self.version = "HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade = False
        self.body = bytearray()
        self.body_complete = False
        self.body_received = 0
        # Set once nobody will read the rest of the body (the response was
        # sent): arriving bytes are then counted and dropped.
        self.discard_body = False


class RequestParser:
    """Feeds one connection's bytes to llhttp and collects complete heads."""

    __slots__ = (
        "_cur",
        "_field_size",
        "_fields",
        "_head_bytes",
        "_head_limit",
        "_headers",
        "_in_head",
        "_line_limit",
        "_parser",
        "_url",
        "ready",
    )

    def __init__(self, limits: Limits) -> None:
        # Limits as plain ints (0 = unlimited becomes "never reached"): the
        # callbacks below run once per header of every request.
        unlimited = 1 << 62
        self._line_limit = limits.request_line or unlimited
        self._fields = min(limits.fields or MAX_FIELDS, MAX_FIELDS)
        self._field_size = (limits.field_size or unlimited) - 2
        self._head_limit = limits.head
        self._parser = httptools.HttpRequestParser(self)
        self.ready: deque[Request] = deque()
        self._cur: Request | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._url = b""
        self._in_head = False
        self._head_bytes = 0

    @property
    def in_head(self) -> bool:
        """True while a request head has begun but not ended."""
        return self._in_head

    @property
    def current(self) -> Request | None:
        """The request whose bytes are arriving now (head or body)."""
        return self._cur

    def feed(self, data: bytes) -> None:
        """Parse `data`; raise ProtocolError if it breaks the protocol."""
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self._head_limit:
                raise ProtocolError(431, "request head too large")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserUpgrade:
            # The head asked to switch protocols; wsgid serves HTTP/1.1 only,
            # so the request is answered as a plain one and the connection
            # closed afterwards (the bytes after the head are not HTTP/1.1).
            if self._cur is not None:
                self._cur.upgrade = True
                self._cur.keep_alive = False
        except httptools.HttpParserInvalidMethodError as exc:
            raise ProtocolError(policy.status_for_bad_method(data), str(exc)) from None
        except httptools.HttpParserError as exc:
            raise policy.protocol_error_from_llhttp(str(exc), data) from None
        if self._in_head and self._head_bytes > self._head_limit:
            raise ProtocolError(431, "request head too large")

    # llhttp callbacks; each runs inside feed_data.

    def on_message_begin(self) -> None:
        req = self._cur = Request()
        self._headers = req.headers
        self._url = b""
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._line_limit:
            raise ProtocolError(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        if len(name) + len(value) > self._field_size:
            raise ProtocolError(431, "header field too large")
        if len(headers) > self._fields:
            raise ProtocolError(431, "too many header fields")

    def on_headers_complete(self) -> None:
        req = self._cur
        assert req is not None
        parser = self._parser
        method = parser.get_method()
        req.method = _METHODS.get(method) or method.decode("ascii")
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:  # llhttp lets HTTP/0.9 and HTTP/2.0 through
            raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        req.version = version
        req.keep_alive = parser.should_keep_alive()
        url = self._url
        if len(req.method) + len(url) + 11 > self._line_limit:
            raise ProtocolError(414, "request line too long")
        req.target = url
        policy.check_head(req)
        self._in_head = False
        self.ready.append(req)

    def on_body(self, body: bytes) -> None:
        req = self._cur
        assert req is not None
        req.body_received += len(body)
        if not req.discard_body:
            req.body += body

    def on_message_complete(self) -> None:
        req = self._cur
        assert req is not None
        req.body_complete = True


__all__ = ["BadRequest", "Limits", "ProtocolError", "Request", "RequestParser"]
