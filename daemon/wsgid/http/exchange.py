"""One request/response exchange with the WSGI application.

Owns: calling the app for a parsed request, PEP 3333's rules about the
returned iterable (iterate it, always call its `close()`), the `write()`
callable, `100 Continue`, `wsgi.file_wrapper` (sent with sendfile(2), or
iterated when the `sendfile` setting is off), and what happens when the app
fails: an exception before the response started becomes a 500 with the
traceback in the error log; after it started, the connection is cut (the
client must not take a truncated body for a whole one). The worker keeps
serving either way, also when the app calls `sys.exit()` (SystemExit: as in
gunicorn, a request cannot end the worker; the worker's own exit, `ServerExit`,
goes through). A body that ends short of the app's own Content-Length
(the connection is closed) or goes past it (the excess is dropped) is logged
too: `app.response_short`, `app.response_long`.

It knows nothing of sockets, loops or logs: the worker passes a `Channel`
that can send bytes, pull more body bytes, and send a file, and builds one
`Exchange` with what every request shares: the app, the error log, the
context variable of request ids (the worker chooses a request's id with
`wsgid.logs.request_id`: adopted from a trusted proxy's `request_id_header` or
made up; the exchange puts it in `environ["wsgid.request_id"]` and in the
variable while the app runs, so every event logged meanwhile names it; the
response carries it only under `request_id_response_header`, when that is
set), and the `Date` of the heads.
The environ gets no `HTTP_*` key the client did not send.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import IO, Any, Protocol, cast

from wsgid.http import environ as environ_mod
from wsgid.http.body import EMPTY_INPUT, EmptyInput, InputStream
from wsgid.http.date import Dates
from wsgid.http.errors import BodyError, Interrupted, ServerExit, error_response
from wsgid.http.request import Request
from wsgid.http.response import CONTINUE, Response

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Channel(Protocol):
    """What an exchange needs from the worker's connection."""

    def send(self, data: bytes, more: bytes = b"") -> None:
        """Queue `data`, then `more`, for the client (blocks only past a high-water mark).

        Two pieces, so that a large body goes after its head without being copied onto it:
        the channel decides whether joining them or a vectored send costs less.
        """

    def send_last(self, data: bytes, more: bytes = b"") -> None:
        """Send the bytes that complete the response (as `send`): the worker may hold them a
        moment, to send them with other connections' responses (`loop.py`, "Held responses")."""

    def fill(self) -> None:
        """Read more of the request body into the request; raise BodyError if it cannot."""

    def sendfile(self, file: IO[bytes], count: int | None) -> int:
        """Send up to `count` bytes (None: to EOF) of `file` from its position."""

    def handover(self) -> object:
        """A socket over the connection, for an app that takes it over (an Upgrade
        request: a WebSocket library); None where none can be given."""


class ErrorLog(Protocol):
    def exception(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...


class FileIterator:
    """`wsgi.file_wrapper` with `sendfile` off: the file is read and sent in blocks.

    Not a `FileWrapper`, so the exchange never takes it for one: the worker chooses the
    class once, and nothing is decided per response.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class FileWrapper(FileIterator):
    """`wsgi.file_wrapper`: lets the worker use sendfile(2) for file bodies."""

    __slots__ = ()

    def fileno(self) -> int | None:
        """The OS file descriptor if this wraps a regular file, else None."""
        try:
            fd = self.filelike.fileno()
            return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (AttributeError, OSError, ValueError):
            return None


class Exchange:
    """One worker's way of calling its app: what all its requests share."""

    def __init__(
        self,
        app: WSGIApp,
        log: ErrorLog,
        current_id: ContextVar[str | None],
        dates: Dates,
        id_response_header: str = "",
    ) -> None:
        self.app = app
        self.log = log
        self.current_id = current_id  # holds the id while the app runs
        self.dates = dates
        # "Name: " of the response header carrying the id; b"": none.
        self.id_field = id_response_header.encode("latin-1") + b": " if id_response_header else b""
        self.id_name = id_response_header.lower()

    def run(
        self, base: dict[str, Any], req: Request, channel: Channel, worker_keeps: bool, rid: str
    ) -> Response:
        """Call the app for `req` and send its response through `channel`.

        `worker_keeps`: whether the worker lets the connection stay open; `rid`:
        the request's id (`wsgid.logs.request_id.choose`). The
        returned response also tells the worker what comes next: whether the
        connection may stay open (`keep_alive()`), whether the app failed
        (`app_failed`) and the environ it saw (for hooks and the access log).
        """
        log = self.log
        resp = Response(req, self.dates, worker_keeps, channel)
        if req.body_complete and not req.body:
            wsgi_input: InputStream | EmptyInput = EMPTY_INPUT  # most requests: no body at all
        else:
            before_read = _continue_sender(channel, resp) if req.expect_continue else None
            wsgi_input = InputStream(req, channel.fill, before_read)
        environ = resp.environ = environ_mod.build(base, req, wsgi_input)
        handover = None
        if req.upgrade:
            # What WebSocket libraries (simple-websocket: Flask-Sock, Flask-SocketIO) take the
            # connection over with, under gunicorn's name.
            handover = channel.handover()
            if handover is not None:
                environ["gunicorn.socket"] = handover
        # The request id: in the environ, in the response if asked, and (through the
        # context variable) in every error-log event emitted while the app runs.
        environ["wsgid.request_id"] = rid
        if self.id_field:
            resp.request_id = self.id_field + rid.encode("ascii") + b"\r\n"
            resp.request_id_name = self.id_name
        token = self.current_id.set(rid)

        result: Iterable[bytes] | None = None
        try:
            result = self.app(environ, resp.start_response)
            if handover is not None and resp.status is None:
                _taken_over(resp)  # answered on the socket itself, start_response never called
                return resp
            _send_result(result, resp, channel)
            if resp.body_dropped:
                log.warning(
                    "app.body_ignored",
                    status=resp.status_code,
                    method=req.method,
                    path=_path(req),
                    reason="HEAD, 204, 205 and 304 responses have no body",
                )
            if resp.length_mismatch:
                _length_mismatch(resp, req, log)
        except Interrupted as exc:
            exc.response = resp  # what the worker's post_request call is about (on errors only)
            raise
        except (Exception, SystemExit) as exc:
            if type(exc) is ServerExit:
                raise  # the worker stops now (a fast stop's signal came while the app ran)
            if type(exc) is StopIteration and handover is not None and resp.status is None:
                _taken_over(resp)  # gunicorn's way to say it (Flask-Sock raises it)
            else:
                _fail(exc, resp, req, channel, log)
        finally:
            if type(result) is not list:  # a list has no close(), and most apps return one
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        log.exception("app.close_failed", method=req.method, path=_path(req))
            self.current_id.reset(token)
        return resp


def _taken_over(resp: Response) -> None:
    """The app ended an Upgrade request without start_response, its socket in the environ:
    it answered, and used the connection, on that socket itself. wsgid sends nothing more
    and closes the connection. (Logged as 101: what a WebSocket library sends.)"""
    resp.taken_over = True
    resp.broken = True  # the connection ends with it
    resp.status_code = 101


def _send_result(result: Iterable[object], resp: Response, channel: Channel) -> None:
    # Items are typed `object` and checked here, so that the compiled build
    # refuses a str with this message too, not a bare TypeError of its own.
    if not resp.head_sent and type(result) in (list, tuple):
        if resp.status is None:
            raise AssertionError("the application returned without calling start_response()")
        chunks = cast("list[bytes] | tuple[bytes, ...]", result)  # checked just below
        for chunk in cast("list[object] | tuple[object, ...]", chunks):
            if type(chunk) is not bytes:
                raise TypeError(f"the application yielded {type(chunk).__name__}, not bytes")
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        # Head and body in one send: one syscall, one TCP segment for a small body.
        head, rest = resp.parts(body)
        channel.send_last(head, rest)
        return
    if type(result) in (bytes, str) or result is None:
        # The body itself (or nothing) where PEP 3333 wants an iterable of bytes: a common
        # mistake, which iterating would report as "yielded int" or "not iterable".
        what = "None" if result is None else type(result).__name__
        raise TypeError(f"the application returned {what}, not an iterable of bytes ([body])")
    if isinstance(result, FileWrapper) and not resp.head_sent and _send_file(result, resp, channel):
        return
    for chunk in result:
        if type(chunk) is not bytes:
            raise TypeError(f"the application yielded {type(chunk).__name__}, not bytes")
        if not chunk:
            continue  # PEP 3333: empty strings must not delay or end the body
        if resp.head_sent:
            head = b""
        else:
            if resp.status is None:
                raise AssertionError("the application yielded before calling start_response()")
            # The head goes with the first piece of body: one send, one TCP segment.
            head = resp.streaming_head()
        # Sent at once even when it completes the announced length: the iterable may still
        # run code before it ends (a generator's cleanup, a sleep), and held bytes would wait
        # for it (a list's body is held at its end, above).
        channel.send(head, resp.frame(chunk))
    if not resp.head_sent:
        if resp.status is None:
            raise AssertionError("the application returned without calling start_response()")
        channel.send_last(resp.head(0) + resp.end())
        return
    tail = resp.end()
    if tail:
        channel.send_last(tail)


def _send_file(wrapper: FileWrapper, resp: Response, channel: Channel) -> bool:
    """sendfile(2) when the length is known; False to fall back to iteration."""
    fd = wrapper.fileno()
    if fd is None or resp.status is None:
        return False
    try:
        remaining = os.fstat(fd).st_size - wrapper.filelike.tell()
    except (OSError, ValueError):
        return False
    has_length = any(name.lower() == "content-length" for name, _ in resp.headers)
    head = resp.head(None if has_length else max(remaining, 0))
    channel.send(head)
    if resp.body_allowed and resp.content_length is not None:
        count = min(resp.content_length, max(remaining, 0))
        sent = channel.sendfile(wrapper.filelike, count)
        resp.bytes_sent += sent
    resp.end()
    return True


def _continue_sender(channel: Channel, resp: Response) -> Callable[[], None]:
    req = resp.req

    def send_continue() -> None:
        # Never after the head: an interim response inside the body would corrupt it (a
        # 2xx head asked for the body itself, `Response.streaming_head`).
        if req.expect_continue and not req.body_complete and not resp.head_sent:
            channel.send(CONTINUE)
        req.expect_continue = False

    return send_continue


def _fail(
    exc: BaseException, resp: Response, req: Request, channel: Channel, log: ErrorLog
) -> None:
    """Answer for an app, body or client failure; only a clean 500 keeps the connection."""
    resp.app_failed = True
    if isinstance(exc, BodyError):
        # The body could not be completed: a bad chunk, a limit, a peer that
        # left. Answer with its status if nothing was sent yet; either way
        # the connection ends (a started response stays unterminated).
        log.warning("request.body_error", method=req.method, path=_path(req), error=str(exc))
        if exc.status and not resp.head_sent:
            resp.status_code = exc.status
            _send_quietly(
                channel, error_response(exc.status, resp.dates, head=req.method == "HEAD")
            )
        resp.broken = True
        return
    if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
        log.warning("client.gone", method=req.method, path=_path(req), error=str(exc))
        resp.broken = True
        return
    if resp.head_sent:
        log.exception("app.error_after_response_started", method=req.method, path=_path(req))
        resp.broken = True
        return
    log.exception("app.error", method=req.method, path=_path(req))
    resp.status = "500 Internal Server Error"
    resp.status_code = 500
    resp.head_sent = True
    keep_alive = resp.keep_alive()
    resp.said_close = not keep_alive
    body = error_response(500, resp.dates, keep_alive=keep_alive, head=req.method == "HEAD")
    if resp.request_id:  # the id a user can quote when reporting the error
        body = body.replace(b"\r\n", b"\r\n" + resp.request_id, 1)
    resp.bytes_sent = len(body) - body.index(b"\r\n\r\n") - 4
    if not _send_quietly(channel, body):
        resp.broken = True


def _length_mismatch(resp: Response, req: Request, log: ErrorLog) -> None:
    """The body the app gave did not match its own Content-Length: tell the operator.

    Short: the client cannot tell the response from a whole one but by the
    closed connection, so this is an error. Long: the response sent is
    well-formed (the excess was dropped), but it is not what the app meant.
    """
    declared = resp.content_length
    short = resp.bytes_sent < (declared or 0)
    (log.error if short else log.warning)(
        "app.response_short" if short else "app.response_long",
        method=req.method,
        path=_path(req),
        status=resp.status_code,
        content_length=declared,
        **(
            {"bytes_sent": resp.bytes_sent, "action": "connection closed"}
            if short
            else {"bytes_given": resp.bytes_sent + resp.excess, "action": "excess dropped"}
        ),
    )


def _send_quietly(channel: Channel, data: bytes) -> bool:
    try:
        channel.send(data)
    except OSError:
        return False
    return True


def _path(req: Request) -> str:
    return req.path.decode("latin-1")
