"""Bytes to request heads and body bytes, with llhttp (httptools) doing the lexing.

Owns: the per-connection `RequestParser`, the `Request` record it produces and
the size limits on the head (request line, field count, field size, whole head).
Every semantic rule about what a valid request is lives in `policy.py`, which
this module calls once a head is complete; this module only lexes and counts.

Theory of operation: llhttp parses incrementally and calls back per URL piece,
per body piece and at message boundaries (per field only to bound trailers:
a head's fields are taken from its bytes once llhttp has accepted the head,
which costs far less than a Python call per field). Complete heads are queued
on `ready` as soon as they end (so a large body can stream to the app while it
is still arriving); body bytes are appended to the request they belong to, so
pipelined requests never see each other's bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httptools

from wsgid.http import fields, policy
from wsgid.http.errors import BadRequest, ProtocolError

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
# RFC 9112 §2.3: wsgid speaks HTTP/1.1 and answers HTTP/1.0 clients.
_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}


# gunicorn's ceiling on limit_request_fields, also what 0 means there.
MAX_FIELDS = 32768
# A chunk-size line still incomplete after this many bytes is refused; the
# margin lets one read end anywhere inside a normal line.
MAX_CHUNK_LINE = 65536 + 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """Head limits; 0 means unlimited (request line, field size) or the
    32768 ceiling (field count), as in gunicorn."""

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190
    body: int = 0  # limit_request_body: 0 = no limit
    refuse_underscores: bool = False  # header_map = "refuse"

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

    # Defaults are class attributes: a request sets only what differs, and
    # one is built for every request.
    method = ""
    target = b""
    path = b""
    query = b""
    version = "HTTP/1.1"
    keep_alive = True
    content_length: int | None = None
    chunked = False
    expect_continue = False
    upgrade = False
    authority = b""  # the host of an absolute-form target (RFC 9112 §3.2.2)
    body_complete = False
    body_error: Exception | None = None  # why the body could not be completed
    body_received = 0
    # Set once nobody will read the rest of the body (the response was
    # sent): arriving bytes are then counted and dropped.
    discard_body = False

    # The head's field lines as sent (set by the parser when there are any).
    field_lines: Sequence[bytes] = ()
    # The fields as the environ shows them (`HTTP_*`, CONTENT_*): latin-1
    # text, repeated fields joined (fields.py).
    environ: Mapping[str, str] = fields.NO_FIELDS

    # The body bytes received and not yet read by the app. A body arriving in
    # one piece stays the bytes object llhttp handed over, so the app's read()
    # gets it without a copy; a second piece makes it a bytearray.
    body: bytes | bytearray = b""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The fields as sent, as (name, value without OWS) pairs (for hooks)."""
        pairs = (line.partition(b":") for line in self.field_lines)
        return [(name, value.strip(b" \t")) for name, _, value in pairs]


class RequestParser:
    """Feeds one connection's bytes to llhttp and collects complete heads."""

    __slots__ = (
        "_body_limit",
        "_chunk_line",
        "_clean_start",
        "_cur",
        "_feeding",
        "_field_size",
        "_fields",
        "_head_at_start",
        "_head_bytes",
        "_head_limit",
        "_head_parts",
        "_in_chunk_line",
        "_line_limit",
        "_parser",
        "_pending",
        "_pending_reason",
        "_trailers",
        "_underscores",
        "_url",
        "closed",
        "in_head",
        "ready",
    )

    def __init__(self, limits: Limits) -> None:
        # Limits as plain ints (0 = unlimited becomes "never reached"): the
        # callbacks below run once per header of every request.
        unlimited = 1 << 62
        self._line_limit = limits.request_line or unlimited
        self._fields = min(limits.fields or MAX_FIELDS, MAX_FIELDS)
        # gunicorn counts a field line as sent, without its CRLF.
        self._field_size = limits.field_size or unlimited
        self._head_limit = limits.head
        self._body_limit = limits.body or unlimited
        self._underscores = limits.refuse_underscores
        self._parser = httptools.HttpRequestParser(self)
        self.ready: deque[Request] = deque()
        self._cur: Request | None = None
        self._url = b""
        self.in_head = False  # a request head has begun and not ended
        self._head_bytes = 0
        # The raw bytes of the head being parsed (the chunks it arrived in),
        # for the checks llhttp's callbacks cannot make: the exact request
        # line, and mapping errors to statuses whatever the chunking.
        self._feeding = b""
        self._head_parts: list[bytes] = []
        # Whether nothing of an earlier message came before the current
        # read's bytes so far, and so whether the head began at its start.
        self._clean_start = True
        self._head_at_start = False
        self._in_chunk_line = False
        self._chunk_line = 0
        # An llhttp error inside the request line, kept until the line is
        # complete: its status (400, 501, 505) depends on the whole line,
        # however the bytes were split into reads.
        self._pending: tuple[bytearray, bool] | None = None
        self._pending_reason = ""
        # Set once the peer sent bytes after a request that ends the
        # connection: they are ignored (RFC 9112 §9.6).
        self.closed = False

    @property
    def current(self) -> Request | None:
        """The request whose bytes are arriving now (head or body)."""
        return self._cur

    def feed(self, data: bytes) -> None:
        """Parse `data`; raise ProtocolError if it breaks the protocol."""
        if self.closed:
            return
        if self._pending is not None:
            self._judge_pending(data)
            return
        self._feeding = data
        self._clean_start = not self.in_head
        if self.in_head:
            self._head_parts.append(data)
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
            self._line_error(str(exc), method=True)
        except httptools.HttpParserError as exc:
            cur = self._cur
            if cur is not None and cur.body_complete and not cur.keep_alive:
                self.closed = True  # bytes after a closing request: ignored
                return
            self._line_error(str(exc), method=False)
        if self.in_head and self._head_bytes > self._head_limit:
            raise ProtocolError(431, "request head too large")
        if self._in_chunk_line:
            # A chunk-size line (with its extensions) still open at the end
            # of a read: bound it, since llhttp would take any length.
            self._chunk_line += len(data)
            if self._chunk_line > MAX_CHUNK_LINE:
                raise BadRequest("chunk size line too long")

    def _line_error(self, reason: str, method: bool) -> None:
        raw = self._raw()
        if self.in_head and not policy.request_line_complete(raw):
            self._pending = (bytearray(raw), method)  # judged once the line is whole
            self._pending_reason = reason
            return
        raise self._judge(raw, reason, method)

    def _judge_pending(self, data: bytes) -> None:
        assert self._pending is not None
        buf, method = self._pending
        buf += data
        if policy.request_line_complete(buf) or len(buf) > self._line_limit + 16:
            raise self._judge(bytes(buf), self._pending_reason, method)

    @staticmethod
    def _judge(raw: bytes, reason: str, method: bool) -> ProtocolError:
        if method:
            return ProtocolError(policy.status_for_bad_method(raw), reason)
        return policy.protocol_error_from_llhttp(reason, raw)

    def _raw(self) -> bytes:
        """The bytes of the current head so far (or of this read)."""
        if self.in_head and len(self._head_parts) > 1:
            return b"".join(self._head_parts)
        return self._feeding

    # llhttp callbacks; each runs inside feed_data.

    def on_message_begin(self) -> None:
        self._cur = Request()
        self._url = b""
        self.in_head = True
        self._head_bytes = 0
        self._head_parts = [self._feeding]
        self._head_at_start = self._clean_start
        self._trailers = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._line_limit:
            raise ProtocolError(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:
            return  # a head's fields are taken from its bytes at once (on_headers_complete)
        # A trailer field (RFC 9112 §7.1.2): counted against the field limits,
        # never merged into the environ.
        self._trailers += 1
        if self._trailers > self._fields or len(name) + 1 + len(value) > self._field_size:
            raise ProtocolError(431, "trailer section too large")

    def on_headers_complete(self) -> None:
        req = self._cur
        assert req is not None
        parser = self._parser
        method = parser.get_method()
        req.method = _METHODS.get(method) or method.decode("ascii")
        url = self._url
        # gunicorn's limit_request_line: the line as sent, without CRLF.
        if len(method) + len(url) + 10 > self._line_limit:
            raise ProtocolError(414, "request line too long")
        # RFC 9112 §3: one SP between the parts, which llhttp does not insist
        # on. The usual head starts its read: then the line is checked in
        # place for HTTP/1.1, sparing llhttp's version getter (it costs more
        # than all of this). Otherwise the line is looked for as sent.
        raw = self._raw()
        line = b"%s %s HTTP/1.1\r\n" % (method, url)
        if self._head_at_start and raw.startswith(line):
            start = 0
            req.version = "HTTP/1.1"
        else:
            req.version = self._version()
            line = b"%s %s %s\r\n" % (method, url, req.version.encode())
            start = raw.find(line)
            if start < 0:
                raise BadRequest("malformed request line")
        req.keep_alive = parser.should_keep_alive()
        start += len(line)
        end = raw.find(b"\r\n\r\n", start - 2)  # the first blank line ends the head
        if end > start:
            lines = raw[start:end].split(b"\r\n")
            if len(lines) > self._fields:
                raise ProtocolError(431, "too many header fields")
            # gunicorn's limit_request_field_size: a field line as sent, without
            # CRLF. Only a section longer than the limit can hold a longer line.
            if end - start > self._field_size and max(map(len, lines)) > self._field_size:
                raise ProtocolError(431, "header field too large")
            req.field_lines = lines
            req.environ, framing, repeated = fields.section(lines, self._underscores)
        else:
            framing, repeated = fields.NO_FIELDS, fields.NOTHING_REPEATED
        req.target = url
        policy.check_head(req, framing, repeated)
        if (req.content_length or 0) > self._body_limit:
            raise ProtocolError(413, "request body larger than limit_request_body")
        self.in_head = False
        self._in_chunk_line = req.chunked
        self._chunk_line = 0
        self.ready.append(req)

    def _version(self) -> str:
        version = _VERSIONS.get(self._parser.get_http_version())
        if version is None:  # llhttp lets HTTP/0.9 (no version at all) and HTTP/2.0 through
            if b" HTTP/" not in self._raw().partition(b"\n")[0]:
                raise BadRequest("request line without an HTTP version")
            raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        return version

    def on_chunk_header(self) -> None:
        self._in_chunk_line = False
        self._chunk_line = 0

    def on_chunk_complete(self) -> None:
        self._in_chunk_line = True

    def on_body(self, body: bytes) -> None:
        self._clean_start = False
        req = self._cur
        assert req is not None
        req.body_received += len(body)
        if req.body_received > self._body_limit:
            raise ProtocolError(413, "request body larger than limit_request_body")
        if not req.discard_body:
            buf = req.body
            if not buf:
                req.body = body
            elif type(buf) is bytes:
                req.body = bytearray(buf) + body
            else:
                buf += body

    def on_message_complete(self) -> None:
        req = self._cur
        assert req is not None
        req.body_complete = True
        self._in_chunk_line = False
        self._clean_start = False


__all__ = ["BadRequest", "Limits", "ProtocolError", "Request", "RequestParser"]
