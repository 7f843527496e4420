"""The response side of PEP 3333: `start_response`, header checks, framing.

Owns: validating what the application hands back (status line, header names
and values, hop-by-hop headers), choosing how the body is framed
(Content-Length, chunked, or end-of-connection), which responses may have a
body (RFC 9110 §6.4.1: none for HEAD, 204, 205, 304) and serialising the head
(with wsgid's Date and Server, unless the app gave its own).
An application's status is a final one, 200 to 599: a 1xx is interim (RFC 9110
§15.2), and a WSGI app answers each request once, so a 1xx from it would leave
the client waiting for a final response and take the next one for it.
It does no I/O; `exchange.py` drives it and the worker sends the bytes. The
grammar a status and a header are checked against is `abnf.py`'s.

Framing, in order of preference (RFC 9112 §6):
1. the app's own Content-Length; the body is cut at that length and the
   connection closed if the app sends less (`length_mismatch` either way:
   the exchange logs it);
2. a length wsgid can see in advance (the app returned a list or tuple and
   never called `write()`), sent as Content-Length (to HEAD, only when the
   app gave a body: an empty one says nothing of GET's length);
3. chunked transfer coding, on HTTP/1.1;
4. otherwise the end of the connection marks the end of the body.

Keep-alive: whether the connection carries another request after a response
is decided by one rule, `Response.keep_alive()`. The other places record a
fact it reads (the parser what the client asked, the worker what it allows,
the head what the app's headers and the framing imply, the exchange a
failure) and ask it: the head announces its answer, the worker acts on the
answer it gives once the response has ended. The worker's stop is the one fact
of the process rather than of a request (`worker_stops`): it comes while
responses are being made, and each of those still to send its head says
`Connection: close`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, cast

from wsgid.http import abnf
from wsgid.http.cache import remember
from wsgid.http.date import END_APP_DATE, END_APP_SERVER, END_OWN, Dates
from wsgid.http.errors import reason_phrase
from wsgid.http.request import Request

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# RFC 9110 §7.6.1 / PEP 3333 "hop-by-hop" headers an application must not set.
# `Connection: close` is accepted as the app's wish to end the connection.
_HOP_BY_HOP: Final = frozenset(
    ("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "trailers", "transfer-encoding", "upgrade", "proxy-connection")
)  # fmt: skip

# The interim response that asks a client awaiting it for the request body (RFC 9110 §10.1.1).
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

# A request body the app left unread is read and dropped up to this size to
# keep the connection open; a larger remainder closes it instead.
DRAIN_LIMIT: Final = 1024 * 1024

# Whether this process's worker began to stop (TERM, QUIT, retired by a reload or
# max_requests, its master gone): from then on no connection stays open after its response.
_worker_stopping = False


def worker_stops() -> None:
    """The worker stops: the responses not yet begun say `Connection: close`, and every
    connection closes after the response it is carrying (`Response.keep_alive`)."""
    global _worker_stopping
    _worker_stopping = True


# The head cache's values: the head up to Date, then the framing it implies
# and the facts it adds to the keep-alive rule (see `_shape`).
Shape = tuple[bytes, bool, int | None, bool, bool, bool, bool, bool, int]
# Header items already found valid, and serialised heads (all but Date) keyed
# on everything that shapes them: most apps send the same few heads over and
# over, and building one costs more than the rest of the response. Bounded
# (cache.py), as is the table of status lines.
_VALID_HEADERS: Final[dict[tuple[str, str], bool]] = {}
_HEAD_CACHE: Final[dict[tuple[Any, ...], Shape]] = {}
_CACHE_MAX: Final = 1024
_STATUS_CODES: Final[dict[str, int]] = {}  # status lines already found valid -> their code


class ResponseError(Exception):
    """The application broke PEP 3333 (bad status, bad header, ...)."""


class Response:
    """The state of one response while the application produces it."""

    # Defaults are class attributes: a response sets only what differs, and
    # one is built for every request.
    status: str | None = None
    status_code = 0
    headers: Sequence[tuple[str, str]] = ()
    head_sent = False
    content_length: int | None = None
    chunked = False
    body_allowed = True
    body_dropped = False  # the app gave a body where none is allowed
    bytes_sent = 0  # body bytes, after framing decisions, for the access log
    # The body did not match the app's own Content-Length: it ended short (the
    # connection is closed), or went on past it (`excess` bytes were dropped).
    length_mismatch = False
    excess = 0
    request_id = b""  # the request id's `Name: ...\r\n` line, set by the exchange if asked
    request_id_name = ""  # that name in lower case
    app_failed = False
    # What ends the connection after this response, each set where it is
    # found and never unset (read by `keep_alive()`, which says more):
    app_close = False  # the app's own `Connection: close`
    close_delimited = False  # only the end of the connection can end the body
    broken = False  # the exchange failed, or the body ended short of its length
    said_close = False  # the head announced `Connection: close`
    # The app took the connection over (a WebSocket library on `gunicorn.socket`): nothing
    # more of this response, nor of the connection, is wsgid's to send (exchange.py).
    taken_over = False

    def __init__(
        self,
        req: Request,
        dates: Dates,
        worker_keeps: bool,
        channel: Any = None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        self.req = req
        self.dates = dates  # the end of the head: Date and Server
        self.channel = channel  # what write() sends through (exchange.Channel)
        # Whether the worker lets the connection stay open (keepalive > 0,
        # not stopping, max_requests not reached).
        self.worker_keeps = worker_keeps
        self.environ = environ if environ is not None else {}  # what the app was called with

    # The app's arguments are typed `object` and checked here: the compiled
    # build would otherwise refuse a wrong type with a bare TypeError of its own.
    def start_response(
        self,
        status: object,
        headers: object,
        exc_info: ExcInfo | None = None,
    ) -> Any:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise ResponseError("start_response called a second time without exc_info")
        code = _STATUS_CODES.get(status) if type(status) is str else None
        if code is None:
            code = _status_code(status)
            if type(status) is not str:
                # A str subclass (Django's SafeString, a StrEnum member): its text, which is
                # what str() of a (str, Enum) member is not.
                status = str.__str__(cast(str, status))
        if type(headers) is not list:
            raise ResponseError("response headers must be a list")
        valid = _VALID_HEADERS
        for item in headers:
            if type(item) is not tuple or item not in valid:
                _check_header(item)
                remember(valid, item, True, _CACHE_MAX)
        self.status = cast(str, status)  # _status_code checked it
        self.status_code = code
        self.headers = headers
        return self.write

    def write(self, data: object) -> None:
        """PEP 3333's write() callable: send `data` as part of the body now."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        # The head goes with the first piece: one send.
        head = b"" if self.head_sent else self.streaming_head()
        self.channel.send(head, self.frame(data))

    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response.

        The keep-alive rule (RFC 9112 §9.3 and §9.6), stated here only. Any
        party may end the connection, and once one has, it stays ended:
        - the client (`req.keep_alive`, read by llhttp): `Connection: close`,
          HTTP/1.0 without `Connection: keep-alive`, or an Upgrade request
          (wsgid answers it as HTTP/1.1; what follows it is not);
        - the worker (`worker_keeps`): keepalive = 0, a stop, max_requests; and
          a stop that began while this response was being made (`worker_stops`);
        - the application: `Connection: close` among its headers;
        - the framing: a body only the end of the connection can end
          (HTTP/1.0 without a length: RFC 9112 §6.3);
        - the exchange (`broken`): a body that ended short of its
          Content-Length, a request body that could not be completed, a
          client that left, an app that failed once the response began;
        - the head: one that announced `close` binds (§9.6);
        - the rest of the request body the app did not read (§9.6): read and
          dropped only while that is cheap (`_drainable`).

        Asked when the head is serialised (the head announces the answer)
        and once the response has ended (the worker acts on it).
        """
        req = self.req
        return (
            req.keep_alive
            and self.worker_keeps
            and not _worker_stopping
            and not (self.app_close or self.close_delimited or self.broken or self.said_close)
            and (req.body_complete or _drainable(req))
        )

    def head(self, known_length: int | None) -> bytes:
        """Decide the framing and serialise the head; call once."""
        assert self.status is not None
        req = self.req
        if req.body_error is not None:
            raise req.body_error  # the request failed: never a success response
        key = (
            self.status,
            tuple(self.headers),
            known_length,
            self.keep_alive(),  # before the app's headers and the framing add theirs
            req.version,
            req.method,
        )
        shape = _HEAD_CACHE.get(key)
        if shape is None:
            shape = remember(_HEAD_CACHE, key, self._shape(known_length), _CACHE_MAX)
        (
            prefix,
            self.body_allowed,
            self.content_length,
            self.chunked,
            self.app_close,
            self.close_delimited,
            self.said_close,
            own_id,
            ending,
        ) = shape
        self.head_sent = True
        # The request id varies per request, so it is not part of the cached prefix;
        # an id header the app set itself wins, as do its own Date and Server.
        tail = self.dates.head_end() if ending == END_OWN else self.dates.head_end_without(ending)
        return prefix + self.request_id + tail if own_id else prefix + tail

    def streaming_head(self) -> bytes:
        """The head of a body the app gives in pieces (an iterable, `write()`), which it may
        go on reading the request body while it gives.

        A client still awaiting `100 Continue` for that body gets it now, before a 2xx head:
        sent when the app first reads, as usual, it would land inside the response's body
        (an interim response comes before the final one, RFC 9110 §15.2; curl, which awaits
        it for bodies past 1 MiB, read it as broken chunked framing), and a client told 2xx
        without it may never send the body (Go's net/http closes instead), leaving the app's
        read to time out. A refusal (3xx to 5xx) goes alone: its client is spared the upload.
        """
        req = self.req
        if req.expect_continue and not req.body_complete and 200 <= self.status_code < 300:
            req.expect_continue = False  # asked now: what the app leaves unread may be drained
            return CONTINUE + self.head(None)
        return self.head(None)

    def _shape(self, known_length: int | None) -> Shape:
        """The head up to Date, and the framing it implies (see the module docstring)."""
        assert self.status is not None
        code = self.status_code
        req = self.req
        self.body_allowed = not (req.method == "HEAD" or code in (204, 205, 304))
        status = self.status if len(self.status) > 3 else _status_line(code)
        lines = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n"]
        app_length: int | None = None
        own_request_id = True
        ending = END_OWN
        for name, value in self.headers:
            lname = name.lower()
            if lname == self.request_id_name:
                own_request_id = False
            elif lname == "content-length":
                if not value.isdigit() or not value.isascii():
                    raise ResponseError(f"invalid Content-Length {value!r}")
                if app_length is not None:
                    # RFC 9110 §8.6: a sender never sends two lengths. Two that differ would
                    # frame the body one way for a client that takes the first, another for
                    # one that takes the last; the same one twice is said once.
                    if int(value) != app_length:
                        raise ResponseError(f"two different Content-Length values: {value!r}")
                    continue
                app_length = int(value)
                if code == 204 or code == 205:
                    continue  # RFC 9110 §8.6: never on 204; 205's is 0, said below
            elif lname == "date":
                ending |= END_APP_DATE  # the app's own, kept (Werkzeug's conditional responses)
            elif lname == "server":
                ending |= END_APP_SERVER
            elif lname == "connection":
                if value.strip().lower() != "close":
                    raise ResponseError(f"hop-by-hop header {name}: {value!r}")
                self.app_close = True
                continue
            lines += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        if code == 205:
            # RFC 9110 §15.3.6: no content, and the zero length said (the app's body is
            # dropped, and logged, as for 204).
            lines.append(b"Content-Length: 0\r\n")
            self.content_length = 0
        elif app_length is not None:
            self.content_length = app_length
        elif known_length is not None and (
            self.body_allowed or (req.method == "HEAD" and known_length and code not in (204, 304))
        ):
            # To HEAD, the length of the body the app gave is what GET would get (RFC 9110
            # §9.3.2), unless it gave none: Werkzeug answers every HEAD with an empty body, and
            # `Content-Length: 0` would then be a lie about the GET response (§8.6).
            lines += (b"Content-Length: ", str(known_length).encode("ascii"), b"\r\n")
            self.content_length = known_length
        elif self.body_allowed:
            if req.version == "HTTP/1.1":
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.close_delimited = True
        said_close = not self.keep_alive()
        if said_close:
            lines.append(b"Connection: close\r\n")
        elif req.version == "HTTP/1.0":
            lines.append(b"Connection: keep-alive\r\n")
        return (
            b"".join(lines),
            self.body_allowed,
            self.content_length,
            self.chunked,
            self.app_close,
            self.close_delimited,
            said_close,
            own_request_id,
            ending,
        )

    def whole(self, body: bytes) -> bytes:
        """Head, body and end, in one piece, for a body known in full before anything is sent."""
        head, rest = self.parts(body)
        return head + rest

    def parts(self, body: bytes) -> tuple[bytes, bytes]:
        """The head, and the body framed and ended, for a body known in full before anything
        is sent; in the usual case the second is `body` itself, not a copy."""
        length = len(body)
        head = self.head(length)
        if self.content_length == length and self.body_allowed:
            # The usual case, where frame() and end() would change nothing.
            self.bytes_sent = length
            return head, body
        return head, self.frame(body) + self.end()

    def frame(self, data: bytes) -> bytes:
        """Frame one piece of body for the wire (may return b"")."""
        if not self.body_allowed:
            if data:
                self.body_dropped = True
            return b""
        if self.content_length is not None:
            room = self.content_length - self.bytes_sent
            if len(data) > room:
                self.length_mismatch = True
                self.excess += len(data) - room
                data = data[:room]  # never send more than the app announced
        self.bytes_sent += len(data)
        if self.chunked and data:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def complete(self) -> bool:
        """Whether the body sent so far is the whole of the length the app announced."""
        return (
            self.content_length is not None
            and self.bytes_sent >= self.content_length
            and self.body_allowed
            and not self.chunked
        )

    def end(self) -> bytes:
        """What ends the body on the wire; marks short bodies for close."""
        if self.req.body_error is not None:
            # The request body broke while the response streamed: do not let
            # the client take the response for a complete one.
            raise self.req.body_error
        if self.chunked:
            return b"0\r\n\r\n"
        if (
            self.body_allowed
            and self.content_length is not None
            and self.bytes_sent < self.content_length
        ):
            self.length_mismatch = True
            self.broken = True  # the client would wait for the missing bytes
        return b""


def _drainable(req: Request) -> bool:
    """Whether the unread rest of `req`'s body may be read and dropped to keep the connection.

    RFC 9112 §9.6 lets a server close instead; it must when the client awaits
    `100 Continue` that was never sent (RFC 9110 §10.1.1), when the remainder
    is unbounded (chunked) or larger than `DRAIN_LIMIT`.
    """
    if req.chunked or req.expect_continue:
        return False
    return (req.content_length or 0) - req.body_received <= DRAIN_LIMIT


def _status_line(code: int) -> str:
    """What is sent for a status the app gave as its code alone ("404"): with the SP,
    which RFC 9112 §4 keeps before even an empty reason, and the code's standard reason.
    A client ignores the reason (§4), but people read it (curl -v, a proxy's log), and an
    app that left it out meant the usual one; a code with none (299) gets an empty one.
    Built only with a head that is not cached yet (`_shape`), never per request."""
    return f"{code} {reason_phrase(code)}"


def _status_code(status: object) -> int:
    """The code of a valid status line (remembered), or ResponseError."""
    if not isinstance(status, str) or not abnf.STATUS.fullmatch(status):
        raise ResponseError(f"invalid status line {status!r}")
    code = int(status[:3])
    if code < 200:
        raise ResponseError(
            f"status {status!r} is interim (1xx): the application's response must be final "
            "(200-599); the server sends 100 Continue itself"
        )
    if code > 599:
        raise ResponseError(f"status {status!r} is outside 100-599 (RFC 9110 §15)")
    try:
        status.encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(f"status line {status!r} is not latin-1") from None
    return remember(_STATUS_CODES, status, code, _CACHE_MAX)


def _check_header(item: object) -> None:
    if type(item) is not tuple or len(item) != 2:
        raise ResponseError(f"response header {item!r} is not a (name, value) tuple")
    name, value = item
    # A str subclass is a native string too: Django and Werkzeug hand one on as it is (a
    # SafeString from format_html, Markup, a StrEnum member); the head encodes its text.
    if not isinstance(name, str) or not abnf.TOKEN.fullmatch(name):
        raise ResponseError(f"invalid response header name {name!r}")
    if not isinstance(value, str) or abnf.FIELD_VALUE_FORBIDDEN.search(value):
        raise ResponseError(f"invalid value for response header {name}: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(f"response header {name} is not latin-1: {value!r}") from None
    if name.lower() in _HOP_BY_HOP:
        raise ResponseError(f"hop-by-hop header {name} set by the application")
