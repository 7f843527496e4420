"""The tornado worker: the epoll loop waiting in tornado's IOLoop; a tornado Application on
that loop, a WSGI app in a thread pool.

Owns: the asyncio event loop of the worker process (tornado's IOLoop wraps it), waiting for
the connection loop's epoll instance inside it, and handing the requests of a tornado
Application (any `tornado.httputil.HTTPServerConnectionDelegate`) to it through tornado's
connection-delegate interfaces: writing its responses, reading its request bodies, its
per-request `request_timeout`, and taking the connection back when its response is done.

Design (docs/architecture.md, "The tornado worker"). The connections are driven by the
same loop as the other kinds (`loop.py`): wsgid's parser and policy, TLS, PROXY headers,
keep-alive, deadlines and graceful stop; never tornado's `HTTP1Connection`, `HTTPServer` or
`IOStream`. The loop waits for its epoll descriptor in the asyncio loop (`wait_events`:
one reader on that descriptor, which stops the asyncio loop when it fires), so tornado's
coroutines, timers and clients (`AsyncHTTPClient`, `asyncio.sleep`, `gen.sleep`) run while
the wsgid loop waits, then the loop takes its events without blocking. When the wsgid
loop has events at once it does not wait; it still gives the asyncio loop a turn at least
every `SPIN_INTERVAL`, so a busy worker never starves its coroutines. When the asyncio loop
has nothing to do at all (`_IdleProbe`: a WSGI app's worker, usually), the loop waits in
epoll alone, as gthread's does; asyncio's self-pipe is in that epoll too, so work another
thread hands the IOLoop ends the wait.

A WSGI app is served as by gthread (`ThreadWorker`, which this kind extends): in a pool of
`threads` threads, never on the loop's thread. A tornado Application runs on the loop's
thread, as tornado runs it: for each complete request, the worker calls
`app.start_request(server_conn, request_conn)` with a `TornadoExchange` of its own as the
`HTTPConnection`, then `headers_received` (a `RequestStartLine` and `HTTPHeaders` built from
the parsed request), `data_received` for the body and `finish`. The Application answers
through `write_headers`, `write` and `finish`; wsgid frames the response with its own
`Response` (the head checks, Content-Length or chunked, the keep-alive rule, `Date`,
`Server`, the request id), so a tornado response leaves exactly as a WSGI one would. The
connection is `busy` meanwhile (as with a pool thread) and is handed back to the loop when
the response is done; the response's last bytes are held for the end of the loop's turn
(loop.py, "Held responses"). Output the client does not take at once waits in the
connection's queue; the Futures `write` returns resolve once it drained (tornado's flow
control), and the loop thread never blocks on a slow reader. A body larger than
`small_body_size` is read by a coroutine that waits for the socket in the asyncio loop.
While the handler runs, the loop's epoll watches its connection: a client that closes
(FIN, TLS close_notify, a reset) ends the request and runs the handler's
`on_connection_close` (`set_close_callback`), as tornado's own server does for an idle
connection; bytes of a next request are parsed and wait for this one's end. What handlers
read of tornado's `IOStream` as `request.connection.stream` is there (`_Stream`: `closed()`,
a close callback, and a `socket` that answers questions, the client's certificate over TLS
for `request.get_ssl_certificate()`), never its reads or writes.

Per request, as run_request does for a WSGI app: the scoreboard shows it, `pre_request` and
`post_request` hooks run, the access log records it, the request id is in the context the
handler runs in (`wsgid.logs.request_id.CURRENT`). `request_timeout`, when set, bounds a
tornado request as it bounds a greenlet's (off by default: a long poll lives as long as its
client; a WSGI app's requests in the pool are bounded as gthread's are): past it, it is
reported with the handler's coroutine stack (`worker.request_timeout`), its task cancelled,
and the client answered 503 (or cut, if part of the response went out). A handler that
blocks the loop stops the heartbeat, and the master replaces the worker after `timeout` with
the stacks (`worker.timeout_dump`).

A handler that answers an Upgrade request 101 (tornado's `WebSocketHandler`) gets the
connection as a tornado `IOStream` over a descriptor of its own (`detach`): the request ends
there for wsgid (logged as 101), which closes its own descriptor and never touches the
connection again; the WebSocket is then the IOLoop's alone (it does not count towards
`worker_connections`, and a stopping worker does not wait for it). Over HTTPS the stream is
a `TLSStream` over the connection's own TLS session.

Not served: HTTP/2, and `HTTPServer` options (xheaders: wsgid's `forwarded_allow_ips` decides
what `remote_ip` and `protocol` say; max_body_size: the `limit_request_*` settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from http import HTTPStatus
from typing import Any, ClassVar

from tornado import httputil
from tornado.iostream import IOStream, StreamClosedError

from wsgid.http import environ as environ_mod
from wsgid.http import forwarded
from wsgid.http.body import EMPTY_INPUT
from wsgid.http.errors import ProtocolError, error_response
from wsgid.http.request import Request
from wsgid.http.response import CONTINUE, Response
from wsgid.logs import request_id
from wsgid.workers.connection import HIGH_WATER, Connection
from wsgid.workers.gthread import ThreadWorker

# The asyncio loop gets a turn at least this often (s), also when the wsgid loop is busy.
SPIN_INTERVAL = 0.002
# Response headers of a tornado handler that wsgid sets itself (Date, Server) or that
# belong to the framing it chooses; `Connection` is kept only as `close` (the app's wish).
_OWN_HEADERS = frozenset(("date", "server", "transfer-encoding", "keep-alive"))

# TornadoExchange.state
OPEN = 0  # the handler may write
FINISHING = 1  # finish() was called: the last bytes go once what is queued drained
ENDED = 2  # the connection is the loop's again (or about to be)


class _Context:
    """What tornado's `HTTPServerRequest` reads from `connection.context`."""

    __slots__ = ("address", "protocol", "remote_ip")

    def __init__(self, remote_ip: str, protocol: str, address: tuple[str, int] | None) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol
        self.address = address

    def __str__(self) -> str:
        return self.remote_ip


class TornadoWorker(ThreadWorker):
    kind: ClassVar[str] = "tornado"
    multithread: ClassVar[bool] = True

    @classmethod
    def prepare_process(cls) -> None:
        # Before the app is imported: an app that takes IOLoop.current() at import gets the
        # loop the worker runs (and not one a preloading master made before the fork).
        asyncio.set_event_loop(asyncio.new_event_loop())

    def setup(self) -> None:
        super().setup()
        aloop = asyncio.get_event_loop_policy().get_event_loop()
        if aloop.is_closed() or aloop.is_running():
            aloop = asyncio.new_event_loop()
            asyncio.set_event_loop(aloop)
        self.aloop = aloop
        # An Application's requests are coroutines, bounded as greenlets are (`request_limit`
        # is the pool's, for a WSGI app, as in gthread).
        self.coroutine_limit = self.settings.request_timeout
        self.tornado_app: httputil.HTTPServerConnectionDelegate | None = (
            self.app if isinstance(self.app, httputil.HTTPServerConnectionDelegate) else None
        )
        # The loop's epoll instance is readable when any of its descriptors is: its reader
        # ends the asyncio loop's run (`wait_events`).
        aloop.add_reader(self.epoll.fileno(), aloop.stop)
        self.last_spin = 0.0
        self.idle = _IdleProbe.of(aloop)
        if self.idle is not None:
            # A callback another thread schedules (call_soon_threadsafe) writes asyncio's
            # self-pipe: it also ends a wait in epoll alone (`wait_events`).
            self.epoll.register(self.idle.self_pipe, select.EPOLLIN)
        # Requests of the Application under way, by connection descriptor, and those whose
        # response is done (their connection goes back to the loop: `_take_back`).
        self.running: dict[int, TornadoExchange] = {}
        self.finished: list[TornadoExchange] = []
        self.free_records = list(range(self.scoreboard.records))
        if self.tornado_app is not None:
            self.log.info("worker.tornado_app", app=type(self.tornado_app).__name__)

    # waiting

    def wait_events(self, timeout: float) -> list[tuple[int, int]]:
        events = self._wait_events(timeout)
        if self.running and events:
            events = self._clients_of_running(events)
        return events

    def _wait_events(self, timeout: float) -> list[tuple[int, int]]:
        if self.finished:
            self._take_back()
        epoll = self.epoll
        idle = self.idle
        if idle is not None and idle.idle():
            # Nothing for the asyncio loop to run, wait for or time (a WSGI app's worker,
            # usually): wait in epoll alone, as gthread does, unless another thread gave the
            # asyncio loop work meanwhile (its self-pipe).
            events: list[tuple[int, int]] = epoll.poll(timeout)
            pipe = idle.self_pipe
            for fd, _ in events:
                if fd == pipe:
                    break
            else:
                return events
        events = epoll.poll(0)
        now = time.monotonic()
        if events:
            if now - self.last_spin < SPIN_INTERVAL:
                return events
            self._spin(0.0, now)
        else:
            self._spin(timeout, now)
        if self.finished:
            self._take_back()
        # Asked again (level-triggered, so nothing is lost): what the asyncio loop's turn
        # and the connections taken back changed is not reported stale.
        return epoll.poll(0)

    def _clients_of_running(self, events: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Look at what the clients of tornado requests under way did: one that left ends its
        request (tornado's `on_connection_close`, as under tornado's own server, which
        watches an idle connection for its close). Its event is handled here; the others
        go to the loop, which stops watching a busy connection once it reported it."""
        running = self.running
        handled: set[int] | None = None
        for fd, _ in events:
            ex = running.get(fd)
            if ex is not None and ex.client_readable():
                if handled is None:
                    handled = set()
                handled.add(fd)
        if handled is None:
            return events
        if self.finished:
            self._take_back()
        return [event for event in events if event[0] not in handled]

    def watch_client(self, conn: Connection) -> None:
        """Watch a busy connection for its client (`_clients_of_running`): the loop has not
        registered a new connection yet, or stopped watching when the request's body came."""
        if conn.events != select.EPOLLIN and self.conns.get(conn.fd) is conn:
            self._watch(conn, select.EPOLLIN)

    def more_input(self, conn: Connection, data: bytes) -> None:
        """What the client sent after the request under way (the next, pipelined): parsed
        now, as the loop does, and answered once this one is."""
        parser = conn.parser
        was_in_head = parser.in_head
        try:
            parser.feed(data)
        except ProtocolError as exc:
            conn.error = exc  # answered after the requests before it (as in the loop)
            return
        if parser.in_head and not was_in_head:
            conn.head_started = time.monotonic()

    def _spin(self, timeout: float, now: float) -> None:
        """Run the asyncio loop until the epoll descriptor is readable, a tornado response
        ends, or `timeout` passes (0: one turn)."""
        aloop = self.aloop
        self.last_spin = now
        if timeout <= 0:
            aloop.call_soon(aloop.stop)
            aloop.run_forever()
            return
        timer = aloop.call_later(timeout, aloop.stop)
        try:
            aloop.run_forever()
        finally:
            timer.cancel()

    def _take_back(self) -> None:
        """Give the loop the connections whose tornado response is done."""
        while self.finished:
            finished, self.finished = self.finished, []
            for ex in finished:
                self.handed_back(ex.conn)

    # requests

    def handle(self, conn: Connection, req: Request) -> None:
        app = self.tornado_app
        if app is None:
            super().handle(conn, req)  # a WSGI app: the pool (gthread)
            return
        worker_keeps = self.allows_keep_alive()
        conn.busy = True
        conn.responded = False
        record = self.free_records.pop() if self.free_records else -1
        ex = TornadoExchange(self, conn, req, worker_keeps, record)
        self.running[conn.fd] = ex
        self.scoreboard.begin(self.slot, record, req.method, req.path, ex.rid, ex.started)
        token = request_id.CURRENT.set(ex.rid)
        try:
            if self.pre_request_hook:
                self.hooks.call("pre_request", self, req)
            ex.start(app)
            if ex.state == OPEN and ex.body_task is None:
                # Its client is watched while the handler runs (a new connection whose
                # request came with it is not registered yet).
                self.watch_client(conn)
        except httputil.HTTPInputError as exc:
            ex.refuse(400, str(exc))
        except Exception:
            self.log.exception("app.error", method=req.method, path=_path(req))
            ex.refuse(500, "the application failed")
        finally:
            request_id.CURRENT.reset(token)

    def _sweep(self, now: float) -> None:
        super()._sweep(now)
        if self.coroutine_limit and self.running:
            for ex in list(self.running.values()):
                elapsed = now - ex.started
                if elapsed > self.coroutine_limit and not ex.timed_out and not ex.req.upgrade:
                    ex.time_out(elapsed)

    def _close_all(self) -> None:
        # What still runs after graceful_timeout ends here, before its connection closes.
        for ex in list(self.running.values()):
            ex.abort()
        self.aloop.remove_reader(self.epoll.fileno())
        self.finished.clear()
        super()._close_all()


class _IdleProbe:
    """Whether the asyncio loop has anything to do: no callback ready, no timer, no
    descriptor but the two `TornadoWorker.setup` knows of (the epoll instance's, its own
    self-pipe). Reads the loop's internals (BaseEventLoop's, unchanged since Python 3.4);
    where they differ, `of` gives None and the worker always waits in the asyncio loop.
    The timer heap is read from the loop at each look, never kept: the loop replaces the list
    when it sheds cancelled timers, and a probe of the old one would find the loop idle for
    good while its coroutines' timers fall due."""

    __slots__ = ("aloop", "ready", "selector_map", "self_pipe")

    def __init__(
        self, aloop: asyncio.AbstractEventLoop, ready: Any, selector_map: Any, self_pipe: int
    ) -> None:
        self.aloop = aloop
        self.ready = ready
        self.selector_map = selector_map
        self.self_pipe = self_pipe

    @classmethod
    def of(cls, aloop: asyncio.AbstractEventLoop) -> _IdleProbe | None:
        try:
            ready = aloop._ready  # type: ignore[attr-defined]
            scheduled = aloop._scheduled  # type: ignore[attr-defined]
            selector_map = aloop._selector.get_map()  # type: ignore[attr-defined]
            self_pipe = aloop._ssock.fileno()  # type: ignore[attr-defined]
        except AttributeError:
            return None
        if not (hasattr(ready, "__len__") and hasattr(scheduled, "__len__")):
            return None
        return cls(aloop, ready, selector_map, self_pipe)

    def idle(self) -> bool:
        # A timer cancelled stays in the heap until the loop's next turn (the wait's own
        # timer, `TornadoWorker._spin`, after each wait in the asyncio loop).
        return (
            not self.ready
            and len(self.selector_map) <= 2
            and all(timer.cancelled() for timer in self.aloop._scheduled)  # type: ignore[attr-defined]
        )


class TornadoExchange(httputil.HTTPConnection):
    """One request of a tornado Application: the `HTTPConnection` it answers through.

    Lives on the loop's thread; touches its connection (busy meanwhile) and the worker's
    counters, never the loop's tables: the worker hands the connection back
    (`TornadoWorker._take_back`).
    """

    def __init__(
        self,
        worker: TornadoWorker,
        conn: Connection,
        req: Request,
        worker_keeps: bool,
        record: int,
    ) -> None:
        self.worker = worker
        self.conn = conn
        self.req = req
        self.worker_keeps = worker_keeps
        self.record = record
        self.rid = request_id.choose(req.incoming_id)
        self.started = time.monotonic()
        environ = environ_mod.build(conn.base, req, EMPTY_INPUT)
        environ["wsgid.request_id"] = self.rid
        self.environ = environ
        port = environ.get("REMOTE_PORT")
        address = (environ["REMOTE_ADDR"], int(port)) if port and str(port).isdigit() else None
        self.context = _Context(environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], address)
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.resp: Response | None = None
        self.state = OPEN
        self.status = 0
        self.timed_out = False
        self.switching = False  # a 101 answered the Upgrade: the handler takes the connection
        self.pending: list[bytes] = []  # framed bytes not handed to the connection yet
        self.pending_size = 0
        self.push_scheduled = False
        self.writing = False  # waiting (asyncio writer) for the client to read
        self.drained: list[asyncio.Future[None]] = []  # write() futures waiting for that
        self.close_callback: Callable[[], None] | None = None
        self.body_task: asyncio.Task[None] | None = None
        self.body_wait: asyncio.Future[None] | None = None
        self.lost = False  # the request ended with its connection (the client left, ...)
        self.stream_close_callback: Callable[[], None] | None = None
        self._stream: _Stream | None = None

    @property
    def stream(self) -> _Stream:
        """What tornado's own server gives as `request.connection.stream` (an `IOStream`),
        as far as handlers and libraries read it: `closed()`, `socket` (through which
        `HTTPServerRequest.get_ssl_certificate` finds the client's certificate),
        `set_close_callback`. Made on first use: most requests never ask."""
        stream = self._stream
        if stream is None:
            stream = self._stream = _Stream(self)
        return stream

    # the request, to the Application

    def start(self, app: httputil.HTTPServerConnectionDelegate) -> None:
        req = self.req
        delegate = app.start_request(self.conn, self)
        self.delegate = delegate
        target = req.path + b"?" + req.query if req.query else req.path
        start_line = httputil.RequestStartLine(req.method, target.decode("latin-1"), req.version)
        headers = httputil.HTTPHeaders()
        # An untrusted peer's forwarded headers leave the headers as they leave a WSGI app's
        # environ (forwarded.py): a handler reading X-Forwarded-Proto itself is not fooled.
        rules = self.conn.parser.rules
        removed = rules.removed if isinstance(rules, forwarded.Untrusted) else frozenset()
        for name, value in req.headers:
            text = name.decode("latin-1")
            if removed and forwarded.environ_key(text) in removed:
                continue
            headers.add(text, value.decode("latin-1"))
        if req.authority:  # absolute-form: its authority is the host (RFC 9112 §3.2.2)
            headers["Host"] = req.authority.decode("latin-1")
        prepared = delegate.headers_received(start_line, headers)
        if prepared is None and req.body_complete:
            # The usual request: its body (if any) read already, no streaming handler.
            if req.body:
                body = bytes(req.body)
                req.body = b""
                delegate.data_received(body)
            delegate.finish()
            return
        self.body_task = self.worker.aloop.create_task(self._read_body(prepared))

    async def _read_body(self, prepared: Awaitable[None] | None) -> None:
        """Give the Application the body as it arrives (and `100 Continue` if asked)."""
        delegate = self.delegate
        assert delegate is not None
        req = self.req
        conn = self.conn
        if prepared is not None:
            await prepared
        continued = False
        try:
            while self.state == OPEN:
                if req.body:
                    data = bytes(req.body)
                    req.body = b""
                    received = delegate.data_received(data)
                    if received is not None:
                        await received
                if req.body_complete:
                    break
                if conn.error is not None:
                    error, conn.error = conn.error, None
                    self.refuse(error.status, error.reason)
                    return
                if req.expect_continue and not continued:
                    continued = True
                    conn.send(CONTINUE)
                more = await self._receive()
                if more is None:
                    return  # refused or gone (said)
                try:
                    conn.parser.feed(more)
                except ProtocolError as exc:
                    self.refuse(exc.status, exc.reason)
                    return
        except OSError:
            self.gone()
            return
        except asyncio.CancelledError:
            return
        except Exception:
            self.worker.log.exception("app.error", method=req.method, path=_path(req))
            self.refuse(500, "the application failed")
            return
        if self.state == OPEN:
            # The body is read: the client is watched for leaving while the handler runs.
            self.worker.watch_client(conn)
            delegate.finish()

    async def _receive(self) -> bytes | None:
        """The next bytes from the client; None when it left or is too slow (answered)."""
        conn = self.conn
        aloop = self.worker.aloop
        while True:
            try:
                data = conn.receive()
            except OSError:
                self.gone()
                return None
            if data is not None:
                break
            self.body_wait = wait = aloop.create_future()
            aloop.add_reader(conn.fd, _set_done, wait)
            try:
                await asyncio.wait_for(wait, conn.io_timeout)
            except asyncio.TimeoutError:
                self.refuse(408, "timed out waiting for the request body")
                return None
            finally:
                if self.body_wait is wait:  # (else `_stop_io` took the reader off already)
                    self.body_wait = None
                    aloop.remove_reader(conn.fd)
        if not data:
            self.gone()
            return None
        conn.last_active = time.monotonic()
        return data

    def client_readable(self) -> bool:
        """The client's side of the connection is readable while the handler runs: True if
        that was handled here (nothing yet, or the client left: the request ends, its
        close callbacks run); False if the loop should stop watching the connection (the
        client sent more, which the parser keeps, bounded by one read, or this request's
        body or protocol switch reads it)."""
        conn = self.conn
        body_task = self.body_task
        if (
            self.state != OPEN
            or self.req.upgrade
            or (body_task is not None and not body_task.done())
            or conn.error is not None
        ):
            return False
        try:
            data = conn.receive()
        except OSError:
            data = b""  # reset, or TLS cut without close_notify: the client is gone as well
        if data is None:
            return True  # (a TLS record not whole yet)
        if data:
            self.worker.more_input(conn, data)
            if not conn.ended:
                return False
        # The client closed (FIN, or TLS close_notify): gone, as tornado's IOStream takes it.
        self.gone()
        return True

    # httputil.HTTPConnection: the response, from the Application

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        if self.state != OPEN or self.resp is not None:
            return self._closed()
        assert isinstance(start_line, httputil.ResponseStartLine)
        if start_line.code == 101 and self.req.upgrade:
            return self._switch(headers)
        fields: list[tuple[str, str]] = []
        for name, value in headers.get_all():
            lname = name.lower()
            if lname in _OWN_HEADERS or (lname == "connection" and value.lower() != "close"):
                continue
            fields.append((name, value))
        req = self.req
        worker = self.worker
        resp = Response(req, worker.dates, self.worker_keeps, None, self.environ)
        exchange = worker.exchange
        if exchange.id_field:
            resp.request_id = exchange.id_field + self.rid.encode("ascii") + b"\r\n"
            resp.request_id_name = exchange.id_name
        reason = start_line.reason or _phrase(start_line.code)
        try:
            resp.start_response(f"{start_line.code} {reason}", fields)
            head = resp.head(None)
            body = resp.frame(chunk) if chunk else b""
        except Exception as exc:
            self._broken(exc)
            return self._closed()
        self.resp = resp
        self.status = resp.status_code
        return self._queue(head, body)

    def _switch(self, headers: httputil.HTTPHeaders) -> asyncio.Future[None]:
        """The handler switches protocols (a `WebSocketHandler` accepting): its 101 head goes
        as the handler wrote it, `Upgrade` and `Connection` included, which `Response` never
        lets an app set; the connection is the handler's once it calls `detach`."""
        lines = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        for name, value in headers.get_all():
            if name.lower() not in _OWN_HEADERS and name.lower() != "content-length":
                lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        worker = self.worker
        exchange = worker.exchange
        if exchange.id_field:
            lines.append(exchange.id_field + self.rid.encode("ascii") + b"\r\n")
        resp = Response(self.req, worker.dates, False, None, self.environ)
        # What the hooks see (a WSGI app's start_response refuses a 1xx: see response.py).
        resp.status, resp.status_code = "101 Switching Protocols", 101
        self.resp = resp
        self.status = 101
        self.switching = True
        return self._queue(b"".join(lines) + worker.dates.head_end())

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        resp = self.resp
        if self.state != OPEN or resp is None:
            return self._closed()
        return self._queue(resp.frame(chunk))

    def finish(self) -> None:
        resp = self.resp
        if self.state != OPEN:
            return
        if resp is None:
            self._broken(RuntimeError("finish() before write_headers()"))
            return
        if self.switching:
            # The head goes on the next turn: tornado's WebSocketHandler calls detach()
            # right after finish(), and the head must then go first on its stream.
            self.state = FINISHING
            if not (self.push_scheduled or self.writing):
                self.push_scheduled = True
                self.worker.aloop.call_soon(self._push)
            return
        try:
            tail = resp.end()
        except Exception as exc:
            self._broken(exc)
            return
        if resp.length_mismatch:
            self.worker.log.warning(
                "app.response_length",
                method=self.req.method,
                path=_path(self.req),
                content_length=resp.content_length,
                sent=resp.bytes_sent + resp.excess,
            )
        self.state = FINISHING
        if tail:
            self.pending.append(tail)
            self.pending_size += len(tail)
        if not (self.push_scheduled or self.writing):
            self._push()

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """tornado's RequestHandler.on_connection_close: run if the request ends without
        its response (the client left, the request timed out, the worker stopped)."""
        self.close_callback = callback

    def detach(self) -> IOStream:
        """The connection as a tornado `IOStream`, for a handler that switched protocols
        (tornado's WebSocketHandler): what wsgid still holds for the client goes first on
        the stream, and the request ends here (logged as 101). The stream has a descriptor
        of its own; wsgid closes its one at once, without a shutdown, and never reads or
        writes the connection again."""
        conn = self.conn
        if not self.switching or self.state == ENDED:
            raise RuntimeError("detach() needs a 101 response to an Upgrade request first")
        queued = b"".join([bytes(piece) for piece in conn.out])  # ciphertext over TLS
        head = b"".join(self.pending)  # the connection never took it: plaintext
        conn.out.clear()
        conn.out_size = 0
        self.pending.clear()
        self.pending_size = 0
        sock = socket.socket(fileno=os.dup(conn.fd))
        stream: IOStream
        if conn.tls:
            # tls_connection is loaded already (the listener serves HTTPS); tornado_tls is
            # imported on the first such detach only.
            from wsgid.workers.tls_connection import TLSConnection
            from wsgid.workers.tornado_tls import TLSStream

            assert isinstance(conn, TLSConnection) and conn.obj is not None
            conn.notified = True  # the session's close_notify is the stream's to send now
            stream = TLSStream(sock, conn.obj, conn.incoming, conn.outgoing, queued)
        else:
            stream = IOStream(sock)
            head = queued + head
        if head:
            stream.write(head)
        self._end(logged=True)  # an Upgrade request never keeps the connection: it closes
        return stream

    # output

    def _queue(self, data: bytes, more: bytes = b"") -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.worker.aloop.create_future()
        if data or more:
            for piece in (data, more):
                if piece:
                    self.pending.append(piece)
                    self.pending_size += len(piece)
            if not (self.push_scheduled or self.writing):
                self.push_scheduled = True
                self.worker.aloop.call_soon(self._push)
        if self.pending_size + self.conn.out_size > HIGH_WATER:
            self.drained.append(future)  # resolved when the client has read it (`_push`)
        else:
            future.set_result(None)
        return future

    def _push(self) -> None:
        """Hand what is pending to the connection, unless earlier bytes still wait for the
        client; with the last of the response, give the connection back."""
        self.push_scheduled = False
        if self.state == ENDED:
            return
        conn = self.conn
        if conn.out:
            self._want_write()
            return
        pending = self.pending
        # Two pieces (a head and the body a handler finished with) go as two: the
        # connection sends a large body after its head without copying it; more are joined.
        more = pending.pop() if len(pending) == 2 else b""
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.pending_size = 0
        try:
            if self.state == FINISHING:
                conn.send_last(data, more)  # held, sent, or its rest queued for the loop
                self._release()  # the future of RequestHandler.finish()
                self._end(logged=True)
                return
            conn.send(data, more)
        except OSError:
            self.gone()
            return
        if conn.out:
            self._want_write()
        else:
            self._release()

    def _want_write(self) -> None:
        if not self.writing:
            self.writing = True
            self.worker.aloop.add_writer(self.conn.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            done = self.conn.flush()
        except OSError:
            self.gone()
            return
        if done:
            self.writing = False
            self.worker.aloop.remove_writer(self.conn.fd)
            if self.pending or self.state == FINISHING:
                self._push()
            else:
                self._release()

    def _release(self) -> None:
        drained, self.drained = self.drained, []
        for future in drained:
            if not future.done():
                future.set_result(None)

    def _closed(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.worker.aloop.create_future()
        future.set_exception(StreamClosedError())
        future.exception()  # retrieved: a handler that never awaits it is not logged for it
        return future

    # endings

    def refuse(self, status: int, reason: str, quiet: bool = False) -> None:
        """End the request with an error response (before any of the app's went out), or cut
        the connection (after). `quiet`: logged already."""
        if self.state == ENDED:
            return
        worker = self.worker
        conn = self.conn
        if not quiet:
            worker.log.info("request.rejected", status=status, reason=reason, peer=conn.peer)
        self.status = 0
        conn.closing = True
        self._stop_io()
        if not conn.responded:
            self.pending.clear()
            conn.out.clear()
            conn.out_size = 0
            answer = error_response(status, worker.dates, head=self.req.method == "HEAD")
            if conn.timed_out:
                conn.timeout_answer = answer
            worker.statuses.append(status)
            if worker.access is not None:
                # The request is known (its line, its peer): logged as answered with `status`.
                elapsed_us = int((time.monotonic() - self.started) * 1e6)
                worker.access.request(self.req, status, len(answer), conn.base, (), elapsed_us)
            with contextlib.suppress(OSError):  # the loop closes a connection whose send failed
                conn.send(answer)
        self._on_close()
        self._end(logged=False)

    def gone(self) -> None:
        """The client left: drop the response, let the loop close the connection."""
        if self.state == ENDED:
            return
        conn = self.conn
        conn.out.clear()
        conn.out_size = 0
        conn.closing = True
        self.status = 0
        self._stop_io()
        self._on_close()
        self._end(logged=False)

    def _broken(self, exc: Exception) -> None:
        """The Application's response cannot be sent (a bad head, a failed request body)."""
        status = getattr(exc, "status", 0)
        if status:
            self.refuse(status, str(exc))
            return
        self.worker.log.error(
            "app.error", method=self.req.method, path=_path(self.req), error=repr(exc)
        )
        self.refuse(500, "the application's response is not valid HTTP")

    def time_out(self, elapsed: float) -> None:
        """Past `request_timeout`: report with the handler's stack, cancel it, answer 503 or
        cut."""
        self.timed_out = True
        worker = self.worker
        conn = self.conn
        task = self._handler_task()
        stack = _coroutine_stack(task.get_coro()) if task is not None else ""
        answer = "cut" if conn.responded else "503"
        worker.report_timeout(conn, self.req, elapsed, answer, stack, worker.coroutine_limit)
        conn.timed_out = True  # what `refuse` sends is the answer the hooks are told of
        self.refuse(503, "request timeout", quiet=True)
        if task is not None:
            task.cancel()
        if worker.post_request_hook:
            # Once, with what the client got, as on the other kinds: the 503, or (cut) the
            # response the handler had begun.
            resp = self.resp or Response(self.req, worker.dates, False, None, self.environ)
            worker.call_post_request(conn, self.req, resp)

    def abort(self) -> None:
        """The worker stops with this request still under way: end it (no response)."""
        if self.state == ENDED:
            return
        task = self._handler_task()
        self.gone()
        if task is not None:
            task.cancel()

    def _on_close(self) -> None:
        self.lost = True
        callback, self.close_callback = self.close_callback, None
        stream_callback, self.stream_close_callback = self.stream_close_callback, None
        if stream_callback is not None:
            self.worker.aloop.call_soon(stream_callback)
        delegate = self.delegate
        if self.body_task is not None and not self.body_task.done() and delegate is not None:
            self.body_task.cancel()
            with contextlib.suppress(Exception):
                delegate.on_connection_close()
        if callback is not None:
            self.worker.aloop.call_soon(callback)

    def _stop_io(self) -> None:
        """Stop waiting for the client in the asyncio loop (the connection goes back)."""
        aloop = self.worker.aloop
        if self.writing:
            self.writing = False
            aloop.remove_writer(self.conn.fd)
        if self.body_wait is not None:
            aloop.remove_reader(self.conn.fd)
            self.body_wait.cancel()
            self.body_wait = None
        drained, self.drained = self.drained, []
        for future in drained:
            if not future.done():
                future.set_exception(StreamClosedError())
                future.exception()  # retrieved: a handler that never awaits it is not logged

    def _end(self, logged: bool) -> None:
        """The request is over: count and log it, give the connection back."""
        self.state = ENDED
        self.close_callback = None
        self.stream_close_callback = None
        # Nothing of this request waits for the client any more: the loop owns it again.
        self._stop_io()
        body_task = self.body_task
        if (
            body_task is not None
            and not body_task.done()
            and body_task is not asyncio.current_task(self.worker.aloop)
        ):
            body_task.cancel()
        worker = self.worker
        conn = self.conn
        req = self.req
        elapsed_us = int((time.monotonic() - self.started) * 1e6)
        worker.last_call_us = elapsed_us
        worker.scoreboard.finish(worker.slot, self.record)
        if self.record >= 0:
            worker.free_records.append(self.record)
        worker.durations.append(elapsed_us)
        resp = self.resp
        if logged and resp is not None:
            worker.statuses.append(self.status)
            keep_alive = resp.keep_alive()
            if keep_alive and not req.body_complete:
                req.discard_body = True  # the rest is dropped as it arrives
            if not keep_alive:
                conn.closing = True
                conn.client_closed = not req.keep_alive and req.body_complete
            if worker.post_request_hook:
                worker.hooks.call("post_request", worker, req, self.environ, resp)
            if worker.access is not None:
                worker.access.request(
                    req, self.status, resp.bytes_sent, self.environ, resp.headers, elapsed_us
                )
        elif not req.body_complete:
            conn.closing = True
        if req.body:
            req.body = b""  # what the app left unread
        if worker.running.get(conn.fd) is self:
            del worker.running[conn.fd]
        worker.finished.append(self)
        worker.aloop.stop()  # the wsgid loop takes the connection back now

    def _handler_task(self) -> asyncio.Task[Any] | None:
        """The asyncio task that runs this request's handler (a tornado RequestHandler whose
        request is this one), or None."""
        for task in asyncio.all_tasks(self.worker.aloop):
            coro = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            if frame is None:
                continue
            owner = frame.f_locals.get("self")
            request = getattr(owner, "request", None)
            if getattr(request, "connection", None) is self:
                return task
        return None


class _Stream:
    """`request.connection.stream` of a tornado request (`TornadoExchange.stream`).

    `closed()`: the connection is closed, or the request ended with it (the client left, the
    request timed out, the worker stopped). `set_close_callback`: run when the request ends
    so; not when its connection closes after the response (wsgid's loop has it then, not
    the request). `socket`: a `_SocketView`. `fileno()` and `set_nodelay()` as an IOStream's.
    No reads or writes: the connection is wsgid's, and the handler answers through
    `RequestHandler.write` and `finish`.
    """

    __slots__ = ("exchange", "socket")

    def __init__(self, exchange: TornadoExchange) -> None:
        self.exchange = exchange
        self.socket = _SocketView(exchange.conn)

    def closed(self) -> bool:
        return self.exchange.lost or self.exchange.conn.sock.fileno() < 0

    def fileno(self) -> int:
        return self.exchange.conn.fd

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self.exchange.stream_close_callback = callback

    def set_nodelay(self, value: bool) -> None:
        sock = self.exchange.conn.sock
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # (as tornado: the connection may be gone)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if value else 0)


class _SocketView:
    """`stream.socket`: the connection's socket as an `ssl.SSLSocket` under tornado's server
    would answer questions, never its I/O (the connection is wsgid's to read, write and
    close). The socket's addresses and options; over TLS the session's certificate, cipher
    and version (an `ssl.SSLObject`: wsgid's TLS runs on memory BIOs, so the socket itself
    is a plain one). `getpeercert` says None on plain HTTP, where tornado's own server has
    no such method and `get_ssl_certificate()` raises AttributeError."""

    __slots__ = ("_conn",)

    _SOCKET = frozenset((
        "family", "type", "proto", "fileno", "getpeername", "getsockname", "getsockopt",
        "setsockopt", "gettimeout",
    ))  # fmt: skip
    _SESSION = frozenset((
        "getpeercert", "cipher", "shared_ciphers", "version", "compression",
        "selected_alpn_protocol", "server_side", "server_hostname", "session_reused",
    ))  # fmt: skip

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        conn = self._conn
        if name in _SocketView._SOCKET:
            return getattr(conn.sock, name)
        if name in _SocketView._SESSION:
            obj = getattr(conn, "obj", None)  # a TLSConnection's session, once it began
            if obj is not None:
                return getattr(obj, name)
            if name == "getpeercert":
                return _no_certificate
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _no_certificate(binary_form: bool = False) -> None:
    """`getpeercert` of a connection without TLS: no certificate."""
    return None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _coroutine_stack(coro: Coroutine[Any, Any, Any] | Any) -> str:
    """Where a suspended coroutine waits: its frames, outermost first, through what each
    awaits."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "".join(traceback.StackSummary.extract(iter(frames)).format())


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _path(req: Request) -> str:
    return req.path.decode("latin-1")
