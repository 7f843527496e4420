"""Bytes to request heads and body bytes, with llhttp (httptools) doing the lexing.

Owns: the per-connection `RequestParser`, which produces `Request` records
(`request.py`), and the size limits on the head (request line, field count,
field size, whole head), enforced while the head arrives. Every semantic rule
about what a valid request is lives in `policy.py`, which this module calls
once a head is complete, and then the forwarded-header rules of the
connection's peer (`forwarded.py`); this module only lexes and counts.

Theory of operation: llhttp parses incrementally and calls back per URL piece,
per body piece and at message boundaries (per field only to bound trailers:
a head's fields are taken from its bytes once llhttp has accepted the head,
which costs far less than a Python call per field). Complete heads are queued
on `ready` as soon as they end (so a large body can stream to the app while it
is still arriving); body bytes are appended to the request they belong to, so
pipelined requests never see each other's bytes.

Where a head starts is known exactly, since its fields are read from its bytes:
a head that begins a read starts there (after the CR and LF llhttp skips between
messages); one that follows another message in the same read starts where that
message ended: its head's end plus its Content-Length, or, for a chunked body,
as its chunk sizes say. While a chunked body arrives over several reads, each
read is fed to llhttp up to every CRLF CRLF in it: a chunked message ends with
one, so it always ends where a feed ends.

A head not complete at the end of a read is kept from its first byte and
bounded after every read: the request line by limit_request_line (414), the
line being received by limit_request_field_size (431; this also bounds the copy
of that field httptools accumulates, as it does for a class with `on_header`),
the whole head by `Limits.head` (431). A connection's parser so holds at most
about one head and one field line, and `close()` lets it go at once: httptools
holds bound methods of the parser, a reference cycle that only the cyclic GC
(rarely run in a worker) would free, so `close()` drops llhttp's side.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

import httptools

from wsgid.http import fields, policy
from wsgid.http.errors import BadRequest, ProtocolError
from wsgid.http.fields import HeaderMap
from wsgid.http.forwarded import Rules
from wsgid.http.request import Request

_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}
# RFC 9112 §2.3: wsgid speaks HTTP/1.1 and answers HTTP/1.0 clients. A later minor version
# (1.2 to 1.9) is one a server SHOULD process as the highest it supports: as HTTP/1.1, its
# rules (Host, framing, keep-alive) and its SERVER_PROTOCOL, which llhttp too applies to it.
_VERSIONS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"} | {
    f"1.{n}": "HTTP/1.1" for n in range(2, 10)
}


# gunicorn's ceiling on limit_request_fields, also what 0 means there.
MAX_FIELDS: Final = 32768
# A chunk-size line still incomplete after this many bytes is refused; the
# margin lets one read end anywhere inside a normal line.
MAX_CHUNK_LINE: Final = 65536 + 4096
# What a closed RequestParser holds instead of its own llhttp parser: one with
# no callbacks, so it refers to nothing.
_CLOSED: Final = httptools.HttpRequestParser(object())


class Limits(NamedTuple):
    """Head limits; 0 means unlimited (request line, field size) or the
    32768 ceiling (field count), as in gunicorn."""

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190
    body: int = 0  # limit_request_body: 0 = no limit
    header_map: HeaderMap = "drop"  # names with "_": fields.py
    # The forwarder headers set aside for forwarded.py, and the keys no "_" name may take
    # (fields.py).
    forwarder: frozenset[str] = frozenset()
    protected: frozenset[str] = frozenset()

    @property
    def head(self) -> int:
        """Bytes a head may take before it is refused, whatever its shape.

        A head is kept until it ends, so this bounds what an unfinished one
        costs, counted as it arrives.
        """
        line = self.request_line or 65536
        fields = min(self.fields or MAX_FIELDS, MAX_FIELDS)
        size = self.field_size or 65536
        return min(line + fields * (size + 4) + 4, 64 * 1024 * 1024)


class RequestParser:
    """Feeds one connection's bytes to llhttp and collects complete heads."""

    __slots__ = (
        "_body_limit",
        "_body_start",
        "_careful",
        "_chunk_line",
        "_clean_start",
        "_cur",
        "_events",
        "_feeding",
        "_field_size",
        "_fields",
        "_forwarder",
        "_head_limit",
        "_header_map",
        "_hs",
        "_in_chunk_line",
        "_kept",
        "_line_limit",
        "_line_open",
        "_open",
        "_parser",
        "_pending",
        "_pending_reason",
        "_protected",
        "_raw_left",
        "_stall",
        "_trailer_at",
        "_trailer_in",
        "_trailers",
        "_url",
        "closed",
        "in_head",
        "ready",
        "rules",
    )

    def __init__(self, limits: Limits, rules: Rules | None = None) -> None:
        # Limits as plain ints (0 = unlimited becomes "never reached"): the
        # callbacks below run once per header of every request.
        unlimited = 1 << 62
        self._line_limit = limits.request_line or unlimited
        self._fields = min(limits.fields or MAX_FIELDS, MAX_FIELDS)
        # gunicorn counts a field line as sent, without its CRLF.
        self._field_size = limits.field_size or unlimited
        self._head_limit = limits.head
        self._body_limit = limits.body or unlimited
        self._header_map = limits.header_map
        self._forwarder = limits.forwarder
        self._protected = limits.protected
        # What the connection's peer may say through forwarded headers (forwarded.py);
        # the loop replaces them once a PROXY header names the client, before any head.
        self.rules = rules
        # _CLOSED once closed (see close()).
        self._parser = httptools.HttpRequestParser(self)
        # llhttp refuses versions other than 0.9, 1.0, 1.1 and 2.0 unless lenient here, which
        # changes nothing else it checks: `_version` judges the version (1.2 served as 1.1,
        # the rest 505). Once a connection (~30 ns), never per request.
        self._parser.set_dangerous_leniencies(lenient_version=True)
        self.ready: deque[Request] = deque()
        self._cur: Request | None = None
        self._url = b""
        self.in_head = False  # a request head has begun and not ended
        # The read being fed, and where in it the current head starts (before
        # the CR/LF llhttp skips), or -1 once the head spans reads: then
        # `_kept` holds it from its first byte. (One buffer, not the reads:
        # grown large, it is a mapping of its own that the allocator gives
        # back to the system when freed.)
        self._feeding = b""
        self._hs = 0
        self._kept = bytearray()
        # Of a head spanning reads: whether its request line is still open,
        # and the length of the line being received.
        self._line_open = True
        self._open = 0
        # Whether nothing of the read has been taken by a message before the
        # current one (so a head beginning now begins the read), and where in
        # the read the current message's body starts, less the body bytes of
        # earlier reads (so a Content-Length body ends at this plus its length).
        self._clean_start = True
        self._body_start = 0
        # Set while feed() must take care (_feed_careful): a chunked body is
        # arriving, a request line error waits, or the stream is over.
        self._careful = False
        self._in_chunk_line = False
        self._chunk_line = 0
        self._trailers = 0
        # The read in which the last trailer field was found, and where its line ended: the
        # next one is looked for after it (`_trailer_size`).
        self._trailer_in = b""
        self._trailer_at = 0
        # Chunked bodies: progress callbacks seen, and bytes since the last
        # progress (an unfinished trailer field, which httptools accumulates).
        self._events = 0
        self._stall = 0
        # An llhttp error inside the request line, kept until the line is
        # complete: its status (400, 501, 505) depends on the whole line,
        # however the bytes were split into reads.
        self._pending: tuple[bytearray, bool] | None = None
        self._pending_reason = ""
        # Set once the peer sent bytes after a request that ends the
        # connection: they are ignored (RFC 9112 §9.6).
        self.closed = False
        # What is still to come of the Content-Length body of a request that
        # asked to upgrade (`_upgrade`), which llhttp does not read.
        self._raw_left = 0

    @property
    def current(self) -> Request | None:
        """The request whose bytes are arriving now (head or body)."""
        return self._cur

    def close(self) -> None:
        """Let go of everything held for the connection, which is closing.

        httptools holds bound methods of this parser: until it is dropped, the
        two form a reference cycle that only the cyclic GC would free (with the
        head and body bytes they hold). Later feeds are ignored.
        """
        self._parser = _CLOSED
        self._careful = True
        self.in_head = False
        self.ready.clear()
        self._kept = bytearray()
        self._feeding = b""
        self._trailer_in = b""
        self._url = b""
        self._pending = None

    def feed(self, data: bytes) -> None:
        """Parse `data`; raise ProtocolError if it breaks the protocol."""
        if self._careful:
            self._feed_careful(data)
            return
        self._feeding = data
        continued = self.in_head
        self._clean_start = not continued
        if continued:
            # More of a head that began in an earlier read.
            self._kept += data
            if len(self._kept) > self._head_limit:
                raise ProtocolError(431, "request head too large")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # The error a callback raised is the context. (Not kept in a local:
            # this frame, in its traceback, would make a reference cycle.)
            if isinstance(exc.__context__, ProtocolError):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data, int(exc.args[0]))
        except httptools.HttpParserInvalidMethodError as exc:
            self._line_error(str(exc), method=True)
        except httptools.HttpParserError as exc:
            cur = self._cur
            if cur is not None and cur.body_complete and not cur.keep_alive:
                self.closed = self._careful = True  # bytes after a closing request: ignored
                return
            self._line_error(str(exc), method=False)
        if self.in_head and self._pending is None:
            self._bound_head(data)
        if self._in_chunk_line:
            # A chunk-size line (with its extensions) still open at the end
            # of a read: bound it, since llhttp would take any length.
            self._chunk_line += len(data)
            if self._chunk_line > MAX_CHUNK_LINE:
                raise BadRequest("chunk size line too long")

    def _upgrade(self, data: bytes, head_end: int) -> None:
        """The head that ends at `head_end` in `data` asked to switch protocols.

        wsgid serves HTTP/1.1 only: the request is answered as a plain one (an
        app may take the connection over, `Request.upgrade`: a WebSocket
        handshake) and the connection closed afterwards. httptools makes llhttp
        skip the content of such a request, but one with content is served
        first (RFC 9110 §7.8; curl's and Java's `Upgrade: h2c` on a POST): its
        Content-Length body is read here, the app never sees a WebSocket
        offer, and nothing after the body is read. A chunked one is refused.
        """
        cur = self._cur
        if cur is None:
            return
        cur.keep_alive = False
        if not (cur.chunked or cur.content_length):
            cur.upgrade = True  # what follows is the new protocol's
            return
        cur.body_complete = False  # llhttp ended it at the head
        if cur.chunked:
            raise BadRequest("a chunked request body with Upgrade is not served")
        self._raw_left = cur.content_length or 0
        self._careful = True
        if head_end < len(data):
            self._raw_body(data[head_end:])

    def _raw_body(self, data: bytes) -> None:
        """The next bytes of the body `_upgrade` reads by its length."""
        piece = data[: self._raw_left]
        self._raw_left -= len(piece)
        self.on_body(piece)
        if not self._raw_left:
            self.on_message_complete()
            self.closed = True  # the connection ends with this request

    def _feed_careful(self, data: bytes) -> None:
        """feed() after the stream ended, while a request line error waits for
        its line, while a chunked body arrives (see the module docstring), or
        while the body of a request that asked to upgrade does (`_upgrade`)."""
        if self.closed or self._parser is _CLOSED:
            return
        if self._raw_left:
            self._raw_body(data)
            return
        if self._pending is not None:
            self._judge_pending(data)
            return
        cur = self._cur
        assert cur is not None
        # A CRLF CRLF may have begun in the previous read.
        probe = self._feeding[-3:] + data[:3]
        first = probe.find(b"\r\n\r\n")
        end = first + 4 - (len(probe) - min(len(data), 3)) if first >= 0 else 0
        pos = 0
        size = len(data)
        while pos < size and not cur.body_complete:
            if end <= pos:
                found = data.find(b"\r\n\r\n", max(pos - 3, 0))
                end = found + 4 if found >= 0 else size
            piece = data if pos == 0 and end == size else data[pos:end]
            received = cur.body_received
            events = self._events
            self._careful = False
            try:
                self.feed(piece)
            finally:
                self._careful = True
            if self.closed or self._pending is not None:
                return
            if (
                cur.body_received == received
                and self._events == events
                and not (self._in_chunk_line or cur.body_complete)
            ):
                # Only an unfinished trailer field takes bytes without a
                # callback; httptools keeps it whole until it ends. (The
                # head's bound holds too: the field size may be unlimited.)
                self._stall += len(piece)
                if self._stall > min(self._field_size + 2, self._head_limit):
                    raise ProtocolError(431, "trailer section too large")
            else:
                self._stall = 0
            pos = end
        if not cur.body_complete:
            self._feeding = data  # its end may hold the start of a CRLF CRLF
            return
        self._careful = False
        if pos < size:
            self.feed(data[pos:] if pos else data)  # what follows the message

    def _bound_head(self, data: bytes) -> None:
        """Keep and bound a head still arriving at the end of a read."""
        hs = self._hs
        if hs >= 0:
            # It began in this read: kept from its first byte from now on.
            hs = _skip_blank(data, hs)
            kept = bytearray(data)
            if hs:
                del kept[:hs]
            self._kept = kept
            self._hs = -1
            self._line_open = True
            self._open = 0
        else:
            hs = 0
        lf = data.rfind(b"\n", hs)
        if lf >= 0:
            if self._line_open:
                # The head's first line, the request line, ended in this read: one without
                # a version (HTTP/0.9's `GET /`) is refused now, not once a blank line that a
                # 0.9 client never sends ends the head (llhttp would wait for one).
                kept = self._kept
                if b" HTTP/" not in kept[: kept.find(b"\n")]:
                    raise BadRequest("request line without an HTTP version")
            self._line_open = False
            self._open = len(data) - lf - 1
        else:
            self._open += len(data) - hs
        size = self._open
        if size and data[-1] == 13:
            size -= 1  # a CR ending a read may begin the line's CRLF
        if self._line_open:
            if size > self._line_limit:
                raise ProtocolError(414, "request line too long")
        elif size > self._field_size:
            raise ProtocolError(431, "header field too large")
        if len(self._kept) > self._head_limit:
            raise ProtocolError(431, "request head too large")
        self._feeding = b""  # `_kept` has what the head needs of it

    def _line_error(self, reason: str, method: bool) -> None:
        raw = self._raw()
        if self.in_head and not policy.request_line_complete(raw):
            self._pending = (bytearray(raw), method)  # judged once the line is whole
            self._pending_reason = reason
            self._careful = True
            return
        raise self._judge(raw, reason, method)

    def _judge_pending(self, data: bytes) -> None:
        assert self._pending is not None
        buf, method = self._pending
        buf += data
        if policy.request_line_complete(buf) or len(buf) > self._line_limit + 16:
            raise self._judge(bytes(buf), self._pending_reason, method)

    def _judge(self, raw: bytes, reason: str, method: bool) -> ProtocolError:
        line = raw.split(b"\n", 1)[0].removesuffix(b"\r")
        if len(line) > self._line_limit:
            # Too long is what any line this long is, whatever else is wrong with it.
            return ProtocolError(414, "request line too long")
        if method:
            return ProtocolError(policy.status_for_bad_method(raw), reason)
        return policy.protocol_error_from_llhttp(reason, raw)

    def _raw(self) -> bytes:
        """The bytes of the current head so far (outside a head: of this read)."""
        if not self.in_head:
            return self._feeding
        if self._hs < 0:
            return bytes(self._kept)
        data = self._feeding
        return data[_skip_blank(data, self._hs) :]

    def _message_end(self) -> int:
        """Where in the read the message before the one now beginning ended."""
        prev = self._cur
        assert prev is not None
        if prev.chunked:
            # Its body began in this read (else the read was fed carefully).
            return _chunked_end(self._feeding, self._body_start)
        return self._body_start + (prev.content_length or 0)

    # llhttp callbacks; each runs inside feed_data.

    def on_message_begin(self) -> None:
        self._hs = 0 if self._clean_start else self._message_end()
        self._cur = Request()
        self._url = b""
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._line_limit:
            raise ProtocolError(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:
            return  # a head's fields are taken from its bytes at once (on_headers_complete)
        # A trailer field (RFC 9112 §7.1.2): counted against the field limits,
        # never merged into the environ.
        self._events += 1
        self._trailers += 1
        if self._trailers > self._fields or self._trailer_size(name, value) > self._field_size:
            raise ProtocolError(431, "trailer section too large")

    def _trailer_size(self, name: bytes, value: bytes) -> int:
        """A trailer field line as sent, without CRLF: limit_request_field_size counts it as
        it counts a head's field line. llhttp gives the value without the whitespace before
        it, so the line is found in the read that ended it. One that began in an earlier read
        counts as llhttp gives it (what came before was bounded as it came: `_stall`)."""
        data = self._feeding
        field = name + b":"
        at = self._trailer_at if data is self._trailer_in else 0
        while True:
            start = data.find(field, at)
            if start < 0:
                return len(field) + len(value)
            end = data.find(b"\r\n", start)
            if end < 0:
                return len(field) + len(value)
            # At a line's start, with this value after the whitespace (the same name may
            # appear in the body before, or in another field).
            sent = data[start + len(field) : end]
            if (start == 0 or data[start - 1] == 10) and sent.lstrip(b" \t") == value:
                self._trailer_in, self._trailer_at = data, end
                return end - start
            at = start + 1

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
        # The head's bytes: in the read, from `start`, or kept from earlier reads.
        data = self._feeding
        start = self._hs
        skew = 0  # where the read begins in `raw`
        if start < 0:
            raw = bytes(self._kept)
            start = 0
            skew = len(raw) - len(data)
            self._kept = bytearray()
        else:
            raw = data
        # RFC 9112 §3: one SP between the parts, which llhttp does not insist
        # on. The usual head starts its read: then the line is checked in
        # place for HTTP/1.1 first, sparing llhttp's version getter (it costs
        # more than all of this; startswith without a start is a primitive).
        line = b"%s %s HTTP/1.1\r\n" % (method, url)
        if not start and raw.startswith(line):
            req.version = "HTTP/1.1"
        else:
            start = _skip_blank(raw, start)
            spelled = parser.get_http_version()
            req.version = self._version(spelled, raw, start)
            line = b"%s %s HTTP/%s\r\n" % (method, url, spelled.encode())
            if not raw.startswith(line, start):
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
            req.environ, framing, repeated, req.underscored = fields.section(
                lines, self._header_map, self._forwarder, self._protected
            )
        else:
            framing, repeated = fields.NO_FIELDS, fields.NOTHING_REPEATED
        req.target = url
        policy.check_head(req, framing, repeated)
        if self.rules is not None:
            self.rules.apply(req)
        if (req.content_length or 0) > self._body_limit:
            raise ProtocolError(413, "request body larger than limit_request_body")
        self.in_head = False
        # Where the body starts in this read (see _message_end).
        self._body_start = end + 4 - skew
        self._clean_start = False
        if req.chunked:
            self._careful = True
            self._in_chunk_line = True
            self._chunk_line = 0
            self._trailers = 0
            self._trailer_in = b""
            self._stall = 0
        self.ready.append(req)

    def _version(self, spelled: str, raw: bytes, start: int) -> str:
        """The version request `raw` (from `start`) is served as; `spelled` is llhttp's."""
        version = _VERSIONS.get(spelled)
        if version is None:  # llhttp lets any d.d (lenient) and no version at all through
            if b" HTTP/" not in raw[start:].partition(b"\n")[0]:
                raise BadRequest("request line without an HTTP version")
            raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        return version

    def on_chunk_header(self) -> None:
        self._events += 1
        self._in_chunk_line = False
        self._chunk_line = 0

    def on_chunk_complete(self) -> None:
        self._events += 1
        self._in_chunk_line = True

    def on_body(self, body: bytes) -> None:
        req = self._cur
        assert req is not None
        if self._clean_start:
            # The read began inside this body: see _message_end.
            self._clean_start = False
            self._body_start = -req.body_received
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


def _skip_blank(data: bytes, pos: int) -> int:
    """Where a message at `pos` begins: llhttp skips CR and LF before one."""
    size = len(data)
    while pos < size and data[pos] in (13, 10):
        pos += 1
    return pos


def _chunked_end(data: bytes, pos: int) -> int:
    """The end of the chunked body (trailers included) that starts at `pos`.

    llhttp accepted all of it, so its chunk-size lines are well-formed.
    """
    while True:
        eol = data.index(b"\n", pos)
        size = int(data[pos:eol].partition(b";")[0], 16)
        pos = eol + 1
        if not size:
            return data.index(b"\r\n\r\n", pos - 2) + 4
        pos += size + 2


__all__ = ["BadRequest", "Limits", "ProtocolError", "Request", "RequestParser"]
