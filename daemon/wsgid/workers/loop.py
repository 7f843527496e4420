"""The epoll connection loop shared by the sync and gthread workers.

Owns: accepting connections, reading request heads (and small bodies)
without blocking, parking idle keep-alive connections, writing responses
without blocking on slow readers, the idle/head/write timeouts, lingering
close, the heartbeat stamp and the graceful stop of the loop. What happens
to a complete request is the kind's business: `handle(conn, req)`.

Theory of operation. One `select.epoll` (not `selectors`: measurably
cheaper) watches the listeners (EPOLLEXCLUSIVE, so one worker wakes per new
connection), a wake-up pipe (signals) and every open connection (a new
one is read at once and registered only if it stays open). A readable
connection is read once (`recv` up to 64 KiB) and the bytes are fed to its
parser; complete requests are handled in order. Output goes straight to
`send`; what the kernel does not take waits in the connection's queue and the
connection switches to EPOLLOUT until the queue drains, reading nothing more
meanwhile (so memory per connection stays bounded). Timeouts are checked once
a second by a sweep over the connections.

Admission. Connections a turn finds waiting on a listener are accepted after
the turn's other events, as many as the connections it served (at least
`accept_batch`): new clients enter at the rate existing ones are served, so a
crowd of keep-alive clients cannot hold a new one in the kernel's accept queue.
An accept that fails for want of a resource (descriptors, memory) stops
watching the listeners for a back-off instead of failing again at once.

While the application runs (sync: inline), a `Connection` is the
`exchange.Channel`: `send` queues past a high-water mark only after waiting
(bounded by `timeout`) for the client to read; `fill` reads more body bytes,
waiting for them the same way.
"""

from __future__ import annotations

import errno
import os
import random
import resource
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any, ClassVar, NamedTuple

from mypy_extensions import mypyc_attr

from wsgid.http import environ as environ_mod
from wsgid.http.date import Dates
from wsgid.http.errors import BodyError, ProtocolError, error_response
from wsgid.http.exchange import Exchange, FileWrapper
from wsgid.http.parser import RequestParser
from wsgid.http.request import Request
from wsgid.listeners import Listener
from wsgid.logs import clock, request_id
from wsgid.workers import unpatched
from wsgid.workers.base import Worker

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERRHUP = select.EPOLLERR | select.EPOLLHUP
RECV_SIZE = 65536
# Past this much queued output, `send` waits for the client instead of
# buffering more of a streamed response.
HIGH_WATER = 4 * 1024 * 1024
LINGER_SECONDS = 2.0
AF_UNIX = int(socket.AF_UNIX)
SWEEP_INTERVAL = 1.0
# accept(2) errors that belong to one connection (Linux reports a pending
# network error of the new connection through accept; see its man page):
# the next connection may be fine.
CONNECTION_ERRORS = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
    errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
    errno.ETIMEDOUT,
})  # fmt: skip
# Any other failure (EMFILE, ENFILE, ENOBUFS, ENOMEM, a broken listener) would
# fail again at once, and the listener stays readable: the listeners are left
# alone for a back-off, doubling from the first to the last value while it lasts.
ACCEPT_BACKOFF = (0.05, 1.0)
ACCEPT_LOG_INTERVAL = 5.0  # at most one accept.failed line per this many seconds
# A wait for the client ends this long before the request's `timeout` runs
# out (at most), so that the request ends, and stamps the heartbeat, before
# the master would take the worker for hung.
WAIT_MARGIN = 0.5


def _no_deadline() -> float:
    return float("inf")


def _blank(data: bytes) -> bool:
    """Whether a read is only CR and LF (its first byte decides most reads)."""
    return data[0] in (13, 10) and not data.strip(b"\r\n")


class Connection:
    """One client connection; also the `exchange.Channel` for its requests."""

    __slots__ = (
        "awaiting",
        "base",
        "body_since",
        "busy",
        "client_closed",
        "closing",
        "deadline",
        "error",
        "events",
        "fd",
        "head_started",
        "io_timeout",
        "last_active",
        "linger_until",
        "out",
        "out_size",
        "parser",
        "peer",
        "responded",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        parser: RequestParser,
        base: dict[str, Any],
        io_timeout: float,
        deadline: Callable[[], float] = _no_deadline,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = parser
        self.base = base
        self.peer: str = base["REMOTE_ADDR"]
        self.out: deque[bytes | memoryview] = deque()
        self.out_size = 0
        self.events = 0  # what epoll watches for; 0 = not registered (yet, or a thread owns it)
        self.closing = False  # close once the output queue is empty
        self.client_closed = False  # the closing request was the client's last (see _close)
        # A pool thread owns the connection (gthread): the loop neither reads,
        # writes nor times it out until the thread hands it back.
        self.busy = False
        # A protocol error found after complete requests on the same
        # connection: those are answered first, in order, then this one.
        self.error: ProtocolError | None = None
        self.linger_until = 0.0  # >0: write side shut, draining input until then
        self.last_active = time.monotonic()
        self.head_started = 0.0
        # The request whose small body the loop waits for, and since when
        # (its deadline: header_timeout from the end of its head).
        self.awaiting: Request | None = None
        self.body_since = 0.0
        self.io_timeout = io_timeout
        # When waits for the client must give up: the current request's
        # `timeout` budget runs out (the worker kind knows when).
        self.deadline = deadline
        # Some of the current response went to the socket or its queue: set
        # before every send, read by gthread's request timeout (which answers
        # 503 only while this is False).
        self.responded = False

    # exchange.Channel

    def send(self, data: bytes) -> None:
        if not data:
            return
        self.responded = True
        if self.out:
            self.out.append(data)
            self.out_size += len(data)
            if self.out_size > HIGH_WATER:
                self.flush_blocking()
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.out.append(memoryview(data)[sent:])
            self.out_size += len(data) - sent

    def fill(self) -> None:
        if self.error is not None:
            # The parser already failed on bytes after those the app has:
            # this body cannot be completed.
            error, self.error = self.error, None
            self.closing = True
            raise BodyError(error.reason, status=error.status)
        sock = self.sock
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                if not self._wait(select.POLLIN):
                    raise BodyError("timed out waiting for the request body", status=408) from None
                continue
            except OSError as exc:
                raise BodyError(f"reading the request body failed: {exc}") from None
            break
        if not data:
            raise BodyError("the client closed the connection before the body ended")
        self.last_active = time.monotonic()
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.closing = True
            raise BodyError(exc.reason, status=exc.status) from None

    def sendfile(self, file: IO[bytes], count: int | None) -> int:
        self.flush_blocking()
        offset = file.tell()
        fd = file.fileno()
        total = 0
        while count is None or total < count:
            want = RECV_SIZE * 16 if count is None else min(count - total, RECV_SIZE * 16)
            try:
                sent = os.sendfile(self.fd, fd, offset + total, want)
            except BlockingIOError:
                if not self._wait(select.POLLOUT):
                    raise BrokenPipeError("timed out writing a file to the client") from None
                continue
            if sent == 0:
                break  # the file is shorter than announced
            total += sent
        file.seek(offset + total)
        return total

    # output plumbing

    def flush(self) -> bool:
        """Send queued output without blocking; True once the queue is empty."""
        out = self.out
        sock = self.sock
        while out:
            chunk = out[0]
            try:
                sent = sock.send(chunk)
            except BlockingIOError:
                return False
            self.out_size -= sent
            if sent < len(chunk):
                out[0] = memoryview(chunk)[sent:]
                return False
            out.popleft()
        return True

    def flush_blocking(self) -> None:
        """Flush the queue, waiting (bounded by the I/O timeout) for the client."""
        while not self.flush():
            if not self._wait(select.POLLOUT):
                raise BrokenPipeError("timed out waiting for the client to read")

    def _wait(self, event: int) -> bool:
        """Wait for `event`, at most the I/O timeout and never past the request's deadline."""
        timeout = self.io_timeout
        left = self.deadline() - time.monotonic()
        if left < timeout:
            if left <= 0:
                return False
            timeout = left
        poller = unpatched.POLL()
        poller.register(self.fd, event)
        return bool(poller.poll(timeout * 1000))


class Acceptor(NamedTuple):
    """How a listener's connections are accepted, and their environ base."""

    accept: Callable[[], tuple[int, Any]]  # the listener's raw accept: (fd, address)
    family: int
    kind: int  # socket type
    proto: int
    base: dict[str, Any]


@mypyc_attr(allow_interpreted_subclasses=True)
class ConnectionLoop(Worker):
    """A worker whose connections are driven by one epoll loop."""

    kind: ClassVar[str] = "loop"
    multithread: ClassVar[bool] = False
    # Connections taken per listener wake-up at least (more when the turn
    # served more, see `serve`). 1 for sync: a busy worker should leave new
    # connections to an idle sibling, which EPOLLEXCLUSIVE wakes for them.
    accept_batch: ClassVar[int] = 1

    def setup(self) -> None:
        settings = self.settings
        self.limits = settings.limits
        self.keepalive = settings.keepalive
        self.timeout = settings.timeout
        self.io_timeout = self.timeout or 30.0
        self.wait_margin = min(WAIT_MARGIN, self.timeout / 4)
        self.heartbeat = self.ctx.heartbeat
        self.slot = self.ctx.slot
        self.deadline: Callable[[], float] = self.wait_deadline if self.timeout else _no_deadline
        self.header_timeout = settings.header_timeout
        # Bodies up to this size are read completely before the app is called,
        # so a slow uploader of a small form never holds the application, and
        # a framing error in them is refused before the app runs.
        self.small_body = settings.small_body_size
        self.max_connections = settings.worker_connections
        self.requests_left = self._request_budget()
        # Looked up once: they cannot change during a worker's life.
        self.pre_request_hook = self.hooks.has("pre_request")
        self.post_request_hook = self.hooks.has("post_request")
        self.access = self.ctx.logs.access
        self.errors_stream = self.ctx.logs.error_stream
        self.dates = Dates(clock.http_date)
        self.exchange = Exchange(
            self.app, self.log, request_id.choose, request_id.CURRENT, self.dates
        )
        self.epoll = unpatched.EPOLL()
        self.conns: dict[int, Connection] = {}
        self.listeners: dict[int, Listener] = {lst.fileno(): lst for lst in self.ctx.listeners}
        self.acceptors = {fd: self._acceptor(lst) for fd, lst in self.listeners.items()}
        for listener in self.listeners.values():
            if listener.sock.family != socket.AF_UNIX:
                # Responses go out whole, so Nagle would only delay them. Linux
                # gives accepted sockets their listener's TCP_NODELAY: one call
                # here instead of one per connection.
                listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepting = False
        self._accept(True)
        self.epoll.register(self.wake_r, EPOLLIN)
        self.stop_deadline = 0.0
        self.stop_grace = settings.graceful_timeout
        # Timers: the sweep, and the end of an accept back-off (0 = none).
        self.next_sweep = time.monotonic() + SWEEP_INTERVAL
        self.next_tick = self.next_sweep
        self.poll_timeout = SWEEP_INTERVAL
        self.accept_backoff = 0.0  # the current back-off; 0 = the last accept worked
        self.accept_resume_at = 0.0
        self.accept_log_after = 0.0  # accept.failed is logged again from then on
        self.accept_suppressed = 0  # accept.failed lines not logged since the last one

    def _request_budget(self) -> int:
        """Requests before recycling (max_requests plus jitter); 0 = unlimited."""
        limit = self.settings.max_requests
        if limit <= 0:
            return 0
        return limit + random.randint(0, self.settings.max_requests_jitter)

    def _acceptor(self, listener: Listener) -> Acceptor:
        sock = listener.sock
        base = environ_mod.connection_base(
            server=listener.server,
            peer=("", ""),
            url_scheme="http",
            multithread=self.multithread,
            errors=self.errors_stream,
            file_wrapper=FileWrapper,
        )
        # socket.accept() is `_accept()` plus a socket object built from the
        # listener's family, type and proto, each read back through an enum
        # conversion (measured: about 5 µs a connection with the rest of the
        # wrapper); these never change, so they are read once here.
        raw_accept = sock._accept  # type: ignore[attr-defined]  # what accept() wraps
        return Acceptor(raw_accept, int(sock.family), int(sock.type), sock.proto, base)

    def _accept(self, on: bool) -> None:
        """Start or stop watching the listeners (at the connection cap, on stop)."""
        if on == self.accepting:
            return
        self.accepting = on
        for fd in self.listeners:
            if on:
                self.epoll.register(fd, EPOLLIN | select.EPOLLEXCLUSIVE)
            else:
                self.epoll.unregister(fd)

    # the loop

    def serve(self) -> None:
        epoll = self.epoll
        conns = self.conns
        listeners = self.listeners
        heartbeat = self.heartbeat
        slot = self.slot
        wake_r = self.wake_r
        access = self.access
        while True:
            if not self.alive and not self._stopping():
                break
            events = epoll.poll(self.poll_timeout)
            now = time.monotonic()
            if self.reopen_requested:
                # Before this turn's requests, so none is logged to the old file.
                self._on_wake()
            heartbeat.beat(slot, now)
            listening: list[int] | None = None
            for fd, ev in events:
                conn = conns.get(fd)
                if conn is not None:
                    if conn.busy:
                        # A pool thread owns it (gthread) and the client sent
                        # more, or left: stop watching until it comes back.
                        self._watch(conn, 0)
                    elif ev & EPOLLOUT:
                        self._on_writable(conn)
                    elif ev & (EPOLLIN | EPOLLERRHUP):
                        self._on_readable(conn, now)
                elif fd in listeners:
                    if listening is None:
                        listening = [fd]
                    else:
                        listening.append(fd)
                elif fd == wake_r:
                    self._on_wake()
            if listening is not None:
                # After the turn's other work, so that an idle sibling woken
                # for the same connections had the time to take them; then as
                # many as the connections just served (the fairness rule).
                batch = max(self.accept_batch, len(events) - len(listening))
                for fd in listening:
                    self._on_listener(fd, batch)
            if access is not None:
                access.flush()  # the access records of this turn, in one write
            if now >= self.next_tick:
                self._tick(now)
        self._close_all()

    def _tick(self, now: float) -> None:
        """Run the timers that are due: the sweep, the end of an accept back-off."""
        if now >= self.next_sweep:
            self._sweep(now)
            self.next_sweep = now + SWEEP_INTERVAL
        if self.accept_resume_at and now >= self.accept_resume_at:
            self.accept_resume_at = 0.0
            if self.alive and len(self.conns) < self.max_connections:
                self._accept(True)
        self._set_timer(now)

    def _set_timer(self, now: float) -> None:
        resume = self.accept_resume_at
        self.next_tick = min(self.next_sweep, resume) if resume else self.next_sweep
        self.poll_timeout = max(0.0, min(SWEEP_INTERVAL, self.next_tick - now))

    def wait_deadline(self) -> float:
        """When a wait for the client gives up: before the master's heartbeat timeout.

        The heartbeat was stamped when the running request began (or
        earlier), so the request ends, and stamps it again, before the
        master would take the worker for hung; the app sees a failed read or
        write (a slow client), not a killed worker.
        """
        return self.heartbeat.last(self.slot) + self.timeout - self.wait_margin

    def _on_wake(self) -> None:
        # One read: what it leaves (rare) makes epoll report the pipe again.
        # (try, not contextlib.suppress: this runs on every gthread loop turn.)
        try:  # noqa: SIM105 - see above: suppress() costs a context manager per turn
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        if self.reopen_requested:
            self.reopen_requested = False
            self.ctx.logs.reopen()
            self.errors_stream = self.ctx.logs.error_stream
        self.on_wake()

    def on_wake(self) -> None:
        """The wake-up pipe was written to (a signal, or a kind's own thread)."""

    def _stopping(self) -> bool:
        """Called while a graceful stop runs; False once the loop may end."""
        now = time.monotonic()
        if not self.stop_deadline:
            self.stop_deadline = now + self.stop_grace
            self._accept(False)
            for listener in self.listeners.values():
                listener.sock.close()
            self.log.info("worker.stopping", connections=len(self.conns))
            # Idle keep-alive connections stay open: a client may have its
            # next request on the wire already, and closing now would reset
            # it. That request is answered with `Connection: close`; quiet
            # connections go at their keep-alive timeout (the sweep).
        return bool(self.conns) and now < self.stop_deadline

    @staticmethod
    def _idle(conn: Connection) -> bool:
        return not (conn.busy or conn.out or conn.parser.in_head or conn.parser.ready)

    def _on_listener(self, fd: int, batch: int) -> None:
        """Accept up to `batch` connections and read each at once.

        Reading at once (the request usually arrived with the handshake) and
        accepting few at a time keep a busy sync worker from taking
        connections that an idle sibling, woken by the same listener, could
        serve sooner.
        """
        if not self.alive:
            return  # stopping or recycling: siblings take new connections
        accept, family, kind, proto, base = self.acceptors[fd]
        now = time.monotonic()
        for _ in range(batch):
            if len(self.conns) >= self.max_connections:
                self._accept(False)
                return
            try:
                conn_fd, addr = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue
                self._accept_failed(exc, now)
                return
            if self.accept_backoff:
                self._accept_recovered()
            sock = unpatched.SOCKET(family, kind, proto, conn_fd)
            sock.setblocking(False)
            if family != AF_UNIX:  # TCP_NODELAY: inherited from the listener
                conn_base = base.copy()
                conn_base["REMOTE_ADDR"] = addr[0]
                conn_base["REMOTE_PORT"] = str(addr[1])
            else:
                conn_base = base
            conn = Connection(
                sock, RequestParser(self.limits), conn_base, self.io_timeout, self.deadline
            )
            self.conns[conn.fd] = conn
            self._on_readable(conn, now)
            # Registered only now, and only if still open and waiting: a
            # connection answered and closed at once never costs an epoll call.
            if not conn.events and not conn.busy and self.conns.get(conn.fd) is conn:
                self._watch(conn, EPOLLIN)

    def _accept_failed(self, exc: OSError, now: float) -> None:
        """An accept failed for the listener, not for one connection: back off."""
        if exc.errno == errno.EINVAL:
            # The master shut the listener down (a stop began); the TERM
            # telling us so is on its way. Stop watching it.
            self._accept(False)
            return
        first, last = ACCEPT_BACKOFF
        repeated = self.accept_backoff > 0
        self.accept_backoff = min(last, self.accept_backoff * 2) if repeated else first
        self.accept_resume_at = now + self.accept_backoff
        self._accept(False)
        self._set_timer(now)
        if now >= self.accept_log_after:
            self.log.warning(
                "accept.failed",
                error=str(exc),
                retry_in=self.accept_backoff,
                suppressed=self.accept_suppressed,
            )
            self.accept_suppressed = 0
            self.accept_log_after = now + ACCEPT_LOG_INTERVAL
        else:
            self.accept_suppressed += 1
        if exc.errno == errno.EMFILE and repeated:
            self._check_descriptors()

    def _check_descriptors(self) -> None:
        """Stop if this worker's descriptors are gone and its connections do not hold them.

        Still out of descriptors after a back-off, with its own connections a
        small share of the limit: the rest was taken (leaked, most likely) by
        the application, and only a new process gets it back. The worker
        stops gracefully, so the master starts its replacement.
        """
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if len(self.conns) * 2 >= limit:
            return  # its own connections: they free descriptors as they close
        try:
            open_fds = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
        except OSError:
            open_fds = limit  # EMFILE: every descriptor below the limit is taken
        self.log.error(
            "worker.fd_exhausted",
            open_fds=open_fds,
            limit=limit,
            connections=len(self.conns),
            action="stopping",
        )
        self.alive = False

    def _accept_recovered(self) -> None:
        self.accept_backoff = 0.0
        if self.accept_suppressed:
            self.log.warning("accept.recovered", suppressed=self.accept_suppressed)
            self.accept_suppressed = 0

    def _on_readable(self, conn: Connection, now: float) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.linger_until or conn.error is not None:
            return  # draining what the client still sends after our close
        parser = conn.parser
        was_in_head = parser.in_head
        if was_in_head or parser.ready or not _blank(data):
            # Blank lines between requests are ignored (RFC 9112 §2.2), so they
            # are not activity either: else a CRLF a second would hold the
            # connection forever, outside both the head and keep-alive clocks.
            conn.last_active = now
        try:
            parser.feed(data)
        except ProtocolError as exc:
            if not (parser.ready or conn.busy or conn.out):
                self._reject(conn, exc)
                return
            conn.error = exc  # answer the requests before it first
            self._process(conn)
            return
        if parser.in_head and not was_in_head:
            conn.head_started = now
        if parser.ready:
            self._process(conn)

    def _process(self, conn: Connection) -> None:
        """Handle the complete requests queued on `conn`, in order."""
        ready = conn.parser.ready
        small = self.small_body
        while ready and not conn.out and not conn.closing and not conn.busy:
            req = ready[0]
            if not (
                req.body_complete
                or req.expect_continue
                or (req.content_length or 0) > small
                or len(req.body) >= small
            ):
                if conn.error is None:
                    if conn.awaiting is not req:
                        # The head just ended: the body's deadline runs from now.
                        conn.awaiting = req
                        conn.body_since = time.monotonic()
                    return  # a small body is still arriving
                ready.clear()  # its body is what broke: refuse it, app not called
                break
            ready.popleft()
            self.handle(conn, req)
        if conn.busy:
            return
        if conn.error is not None and not ready and not conn.out and not conn.closing:
            error, conn.error = conn.error, None
            self._reject(conn, error)
            return
        self._after_output(conn)

    def handle(self, conn: Connection, req: Request) -> None:
        """Serve one complete request; the kind decides where the app runs."""
        raise NotImplementedError

    def run_request(self, conn: Connection, req: Request, worker_keeps: bool) -> None:
        """Call the app for `req` and send the response; then hooks and the access log.

        `worker_keeps`: whether this worker lets the connection stay open
        (`allows_keep_alive`). Runs in the loop's thread (sync) or a pool
        thread (gthread); it touches only `conn` and `req`, never the loop's
        tables.
        """
        access = self.access
        started = time.perf_counter() if access is not None else 0.0
        self.current = (req, conn.peer, conn.last_active)
        if self.pre_request_hook:
            self.hooks.call("pre_request", self, req)
        try:
            resp = self.exchange.run(conn.base, req, conn, worker_keeps)
        except OSError:
            # The client went away while the response was being written:
            # drop what is queued and let the loop close the connection.
            conn.out.clear()
            conn.out_size = 0
            conn.closing = True
            return
        finally:
            self.current = None
        keep_alive = resp.keep_alive()
        if keep_alive and not req.body_complete:
            req.discard_body = True  # the rest is dropped as it arrives (the rule found it cheap)
        if req.body:
            req.body = b""  # what the app left unread
        if not keep_alive:
            conn.closing = True
            conn.client_closed = not req.keep_alive and req.body_complete
        if self.post_request_hook:
            self.hooks.call("post_request", self, req, resp.environ, resp)
        if access is not None:
            access.request(
                req, resp.status_code, resp.bytes_sent, resp.environ, resp.headers,
                int((time.perf_counter() - started) * 1e6),
            )  # fmt: skip

    def allows_keep_alive(self) -> bool:
        """Count a request against max_requests; whether this worker lets its connection stay open.

        The worker's part of the keep-alive rule (`Response.keep_alive`).
        """
        if self.requests_left:  # every request counts against max_requests
            self.requests_left -= 1
            if self.requests_left == 0:
                self.log.info("worker.max_requests", action="recycling")
                self.alive = False
                return False
        return self.alive and self.keepalive > 0

    def _after_output(self, conn: Connection) -> None:
        """Switch between reading and writing, or close, as the queue dictates."""
        if conn.out:
            self._watch(conn, EPOLLOUT)
            return
        if conn.closing:
            self._close(conn, linger=True)
            return
        if conn.events != EPOLLIN:
            self._watch(conn, EPOLLIN)
        conn.last_active = time.monotonic()

    def _watch(self, conn: Connection, events: int) -> None:
        """Set what epoll reports for `conn`; 0 = not registered (a thread owns it)."""
        if conn.events == events:
            return
        if not events:
            self.epoll.unregister(conn.fd)
        elif not conn.events:
            self.epoll.register(conn.fd, events)
        else:
            self.epoll.modify(conn.fd, events)
        conn.events = events

    def _on_writable(self, conn: Connection) -> None:
        try:
            done = conn.flush()
        except OSError:
            self._close(conn)
            return
        if done:
            self._after_output(conn)
            if conn.fd in self.conns and (conn.parser.ready or conn.error is not None):
                self._process(conn)

    def _reject(self, conn: Connection, exc: ProtocolError) -> None:
        """Answer a protocol error and close (the byte stream is untrusted now)."""
        self.log.info("request.rejected", status=exc.status, reason=exc.reason, peer=conn.peer)
        if self.access is not None:
            self.access.rejected(conn.base, exc.status)
        current = conn.parser.current
        head = current is not None and current.method == "HEAD"
        conn.parser.ready.clear()
        conn.closing = True
        try:
            conn.send(error_response(exc.status, self.dates, head=head))
        except OSError:
            self._close(conn)
            return
        self._after_output(conn)

    def _close(self, conn: Connection, linger: bool = False) -> None:
        """Close now, or half-close and drain input so the client sees our response.

        RFC 9112 §9.6: closing with unread input makes the kernel send RST,
        which can destroy the response before the client has read it.
        """
        conn.parser.close()  # nothing more is parsed: its memory goes now, not at a GC
        if linger and not conn.linger_until and not self._nothing_more(conn):
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                conn.linger_until = time.monotonic() + LINGER_SECONDS
                conn.parser.ready.clear()
                self._watch(conn, EPOLLIN)  # from now on: read and drop until EOF
                return
        self.conns.pop(conn.fd, None)
        conn.error = None  # its traceback may hold frames that refer to `conn`
        # Also takes it off epoll: no other descriptor shares the socket (a
        # gthread connection taken from its thread is never registered again).
        conn.sock.close()
        if (
            self.alive
            and not self.accepting
            and len(self.conns) < self.max_connections
            and not self.accept_resume_at
        ):
            self._accept(True)

    @staticmethod
    def _nothing_more(conn: Connection) -> bool:
        """Whether `conn` may close at once: its client ended it and sent nothing after.

        A client that asked to close (`Connection: close`, or HTTP/1.0 without
        keep-alive) must send no further request (RFC 9112 §9.6), so there is
        no unread input for a close to turn into a reset, and the lingering
        half-close (a shutdown, a wake-up and a read more) is not needed. Bytes
        that came after its request anyway (`parser.closed`) still get one.
        No read checks for later bytes: a system call and, almost always, an
        exception, measured at 15 % of the CPU a `Connection: close` request
        takes; nginx's lingering heuristics make the same call.
        """
        return conn.client_closed and not conn.parser.closed

    def _sweep(self, now: float) -> None:
        """Close connections past their idle, head, body, write or linger deadlines."""
        self.check_master()
        keepalive = self.keepalive
        for conn in list(self.conns.values()):
            if conn.busy:
                continue  # its thread is bounded by the I/O timeout itself
            if conn.linger_until:
                if now > conn.linger_until:
                    self._close(conn)
            elif conn.out:
                if now - conn.last_active > self.io_timeout:
                    self._close(conn)
            elif conn.parser.in_head:
                if now - conn.head_started > self.header_timeout:
                    self._reject(conn, ProtocolError(408, "request head not received in time"))
            elif not conn.parser.ready:
                if now - conn.last_active > keepalive:
                    self._close(conn)
            elif conn.awaiting is conn.parser.ready[0]:
                # A small body, read before the app is called: bounded like a head.
                if now - conn.body_since > self.header_timeout:
                    self._reject(conn, ProtocolError(408, "request body not received in time"))
            elif now - conn.last_active > self.io_timeout:
                self._close(conn)

    def _close_all(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        self.epoll.close()
