"""The epoll connection loop shared by every worker kind (sync, gthread, gevent, eventlet
and tornado).

Owns: the loop itself and what it does with the connections it drives:
reading a PROXY header first where the listener requires one (refused with
403 from a peer off proxy_allow_ips, 400 when missing or malformed, 408 past
header_timeout), reading request heads (and small bodies) without blocking, parking idle
keep-alive connections, writing responses without blocking on slow readers,
the idle/head/body/write deadlines, lingering close, the heartbeat stamp, the
scoreboard (each request shown while it runs, the counts published a few times
a second while busy and before each idle wait) and the graceful stop. What
happens to a complete request is the kind's business: `handle(conn, req)`. A
connection's own state and its channel for the app are `connection.py`'s;
taking new connections from the listeners is `admission.py`'s.

Theory of operation. One `select.epoll` (not `selectors`: measurably
cheaper) watches the listeners (EPOLLEXCLUSIVE, so one worker wakes per new
connection), a wake-up pipe (signals) and every open connection (a new
one is read at once and registered only if it stays open). A readable
connection is read once (`recv` up to 64 KiB) and the bytes are fed to its
parser; complete requests are handled in order. Output goes straight to
`send`; what the kernel does not take waits in the connection's queue and the
connection switches to EPOLLOUT until the queue drains, reading nothing more
meanwhile (so memory per connection stays bounded). Deadlines are checked
once a second by a sweep over the connections.

Publishing the counts. The statuses and durations of the requests answered are
kept in lists and handed to the scoreboard's shared memory together
(`_publish`): every PUBLISH_INTERVAL while the worker is busy, and whenever it
is about to wait idle: with counts pending, the loop first asks for events
without waiting, and only when there are none publishes, then waits. So a
worker killed while it waits (SIGKILL, the OOM killer) has told the master of
every request it answered; under load, a turn that finds events at once pays
nothing. An abort (the master's timeout) or a fast exit publishes first too
(`publish_counts`).

Leaving new connections to a sibling. A kind whose workers cannot serve a new
connection soon (gthread with every pool thread taken) stops watching the
listeners, so that EPOLLEXCLUSIVE wakes a sibling for it; every place that
watches them again asks `may_accept()` first (a closed connection, the sweep,
the end of an accept back-off, the kind itself once it has room), and so does
an accept after the first of a wake-up.

The fairness rule. Connections a turn finds waiting on a listener are
accepted after the turn's other events, as many as the connections it served
(at least `accept_batch`): new clients enter at the rate existing ones are
served, so a crowd of keep-alive clients cannot hold a new one in the
kernel's accept queue.

Held responses. Each `send` to a client that waits in `epoll_wait` makes the
kernel wake it, and on a virtual machine waking a task on another CPU costs
an inter-processor interrupt and an exit to the hypervisor, once per
response (docs/performance.md: on a 2-CPU VM, sending a turn's responses
together gave hello +46 % req/s). So the bytes that complete a response
(`send_last`) stay in the connection's queue and the loop sends the turn's
responses together at its end: a client woken for the first finds the
others there. (gthread: the pool thread hands the connection back with
them.) What streams (a body sent before it is complete, 100 Continue, a
file) goes at once. Holding must not make a response wait for another
request's app call, so before each app call the loop makes (sync) it sends
what is held, unless the app has been fast lately (each of its last
`FAST_STREAK` calls shorter than `HOLD_WINDOW`) and what is held is young
(held less than `HOLD_WINDOW`) and few (under `HOLD_MAX`). An app with calls
of a millisecond or more never has a response held past its own end; with a
fast app, a call that turns out slow delays at most `HOLD_MAX` responses
held just before it.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from wsgid import scoreboard as scoreboard_mod
from wsgid.http import environ as environ_mod
from wsgid.http.allowlist import AllowList
from wsgid.http.date import Dates
from wsgid.http.errors import ProtocolError, error_response
from wsgid.http.exchange import Exchange, FileIterator, FileWrapper
from wsgid.http.parser import RequestParser
from wsgid.http.proxy_protocol import ProxyHeaderReader
from wsgid.http.request import Request
from wsgid.http.response import CONTINUE, Response, worker_stops
from wsgid.listeners import Listener
from wsgid.logs import clock, request_id
from wsgid.logs.access import Pending
from wsgid.logs.access import capture as access_capture
from wsgid.runtime import RuntimeSettings
from wsgid.workers import unpatched
from wsgid.workers.admission import CONNECTION_ERRORS, Admission
from wsgid.workers.base import Worker
from wsgid.workers.connection import (
    DONE,
    RECV_SIZE,
    WANT_WRITE,
    Connection,
    no_deadline,
    unsent,
)
from wsgid.workers.interpreted import run_signal_handlers

EPOLLIN: Final = select.EPOLLIN
EPOLLOUT: Final = select.EPOLLOUT
EPOLLERRHUP: Final = select.EPOLLERR | select.EPOLLHUP
LINGER_SECONDS: Final = 2.0
SWEEP_INTERVAL: Final = 1.0
PUBLISH_INTERVAL: Final = 0.2  # seconds between two updates of the scoreboard's counters (busy)
# "Held responses": what is held is sent before the next app call once it is this old (s) or
# this many, or unless the app's last FAST_STREAK calls each took less than HOLD_WINDOW.
HOLD_WINDOW_US: Final = 500
HOLD_WINDOW: Final = HOLD_WINDOW_US / 1e6
# HOLD_MAX: with 50 kept-alive clients a turn has about 46 requests; 16 cut it into three
# sends of wake-ups, 64 leaves it whole (HOLD_WINDOW bounds it still): +6 % sync hello.
HOLD_MAX: Final = 64
FAST_STREAK: Final = 16
# A wait for the client ends this long before the request's `timeout` runs
# out (at most), so that the request ends, and stamps the heartbeat, before
# the master would take the worker for hung.
WAIT_MARGIN: Final = 0.5
# The clock bound once: compiled, `time.monotonic()` looks the function up on the module at each
# call, and a request makes several; a Final is read from a C static.
monotonic: Final = time.monotonic


def _blank(data: bytes) -> bool:
    """Whether a read is only CR and LF (its first byte decides most reads)."""
    return data[0] in (13, 10) and not data.strip(b"\r\n")


@mypyc_attr(allow_interpreted_subclasses=True)
class ConnectionLoop(Worker):
    """A worker whose connections are driven by one epoll loop."""

    kind: ClassVar[str] = "loop"
    multithread: ClassVar[bool] = False
    # Connections taken per listener wake-up at least (more when the turn
    # served more, see `serve`). 1 for sync: a busy worker should leave new
    # connections to an idle sibling, which EPOLLEXCLUSIVE wakes for them.
    accept_batch: ClassVar[int] = 1
    # Whether responses are held until the end of the turn ("Held responses").
    holds_responses: ClassVar[bool] = False

    def setup(self) -> None:
        settings = self.settings
        self.limits = settings.limits
        self.keepalive = settings.keepalive
        self.timeout = settings.timeout
        self.io_timeout = self.timeout or 30.0
        self.request_limit = self.request_limit_of(settings)
        self.wait_margin = min(WAIT_MARGIN, self.request_limit / 4)
        self.scoreboard = self.ctx.scoreboard
        self.slot = self.ctx.slot
        # What the scoreboard's counters have not been told yet (`_publish`): the status of
        # each response, the duration of each request that reached the app.
        self.statuses: list[int] = []
        self.durations: list[int] = []
        self.next_publish = 0.0
        self.deadline: Callable[[], float] = (
            self.wait_deadline if self.request_limit else no_deadline
        )
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
        # The list its records wait in until the turn's flush: the loop appends to it itself.
        self.access_pending: Pending = [] if self.access is None else self.access.pending
        self.errors_stream = self.ctx.logs.error_stream
        self.dates = Dates(clock.http_date)
        self.exchange = Exchange(
            self.app,
            self.log,
            request_id.CURRENT,
            self.dates,
            settings.request_id_response_header,
        )
        self.forwarding = settings.forwarding
        # What HTTPS listeners serve with (the master's, inherited); None: none does.
        self.tls = self.ctx.tls
        self.proxy_allow = AllowList(settings.proxy_allow_ips)
        self.proxy_optional = settings.proxy_protocol_optional
        self.epoll = unpatched.EPOLL()
        # How a wait for a client waits (Connection.waiter): None, in the thread.
        self.io_waiter: Callable[[int, int, float], bool] | None = None
        self.conns: dict[int, Connection] = {}
        # Connections whose last response is held (`_hold`); from which index on they are
        # unsent, and since when (0: none is).
        self.held: list[Connection] = []
        self.unsent_from = 0
        self.unsent_since = 0.0
        self.last_call_us = 0  # how long the app's last call took (`run_request`)
        # Descriptors of connections taken from the request that had them (gthread's
        # `_take`; now a dead socket): closed, never watched, when they are handed back.
        self.taken: set[int] = set()
        self.admission = Admission(
            self.ctx.listeners,
            self.epoll,
            self.log,
            self._environ_base,
            lambda listener: settings.proxy_protocol_of(listener.spec.text),
            self._serves_tls,
        )
        self.admission.watch(True)
        self.epoll.register(self.wake_r, EPOLLIN)
        self.stop_deadline = 0.0
        self.stop_grace = settings.graceful_timeout
        # Timers: the sweep, and the end of an accept back-off (0 = none).
        self.next_sweep = time.monotonic() + SWEEP_INTERVAL
        self.next_tick = self.next_sweep
        # An idle worker stamps its heartbeat at least twice per `timeout`, as gunicorn's
        # workers do: waits as long as the timeout itself (a second, against `--timeout 1`)
        # let the master take an idle worker for a hung one.
        self.idle_wait = min(SWEEP_INTERVAL, self.timeout / 2) if self.timeout else SWEEP_INTERVAL
        self.poll_timeout = self.idle_wait

    def _request_budget(self) -> int:
        """Requests before recycling (max_requests plus jitter); 0 = unlimited."""
        limit = self.settings.max_requests
        if limit <= 0:
            return 0
        # From os.urandom, not `random`: its import is 0.5 ms of every worker's boot for this
        # one draw. 8 bytes make the modulo's bias negligible for any jitter.
        draw = int.from_bytes(os.urandom(8), "big")
        return limit + draw % (self.settings.max_requests_jitter + 1)

    def _serves_tls(self, listener: Listener) -> bool:
        return self.tls is not None and self.settings.tls_of(listener.spec.text)

    def _environ_base(self, listener: Listener) -> dict[str, Any]:
        """The environ keys every connection of `listener` starts with (its peer aside)."""
        secure = self._serves_tls(listener)
        base = environ_mod.connection_base(
            server=listener.server,
            peer=("", ""),
            url_scheme="https" if secure else "http",
            multithread=self.multithread,
            # As gunicorn: other workers run the same app when there are several (what
            # TTIN adds later, and the overlap of a reload's generations, aside).
            multiprocess=self.settings.workers > 1,
            errors=self.errors_stream,
            # Chosen once per worker and listener: with sendfile off, or over TLS (the
            # kernel would send the file unencrypted), file bodies are read and sent in
            # blocks, and the response path never asks.
            file_wrapper=FileWrapper if self.settings.sendfile and not secure else FileIterator,
        )
        if secure:
            base["HTTPS"] = "on"
        return base

    # the loop

    def serve(self) -> None:
        conns = self.conns
        listeners = self.admission.listeners
        scoreboard = self.scoreboard
        slot = self.slot
        wake_r = self.wake_r
        access = self.access
        while True:
            if not self.alive and not self._stopping():
                break
            if self.statuses or self.durations:
                # Counts not published yet go to the scoreboard before the worker idles: a
                # worker killed while it waits (SIGKILL, the OOM killer) has told the master
                # of every request it answered. Looked for without waiting first, so a turn
                # that has events at once (under load) pays nothing; only a worker about to
                # wait pays the second call, and the publication.
                events = self.wait_events(0.0)
                if not events:
                    self._publish(time.monotonic())
                    events = self.wait_events(self.poll_timeout)
            else:
                events = self.wait_events(self.poll_timeout)
            now = time.monotonic()
            if self.reopen_requested:
                # Before this turn's requests, so none is logged to the old file.
                self._on_wake()
            scoreboard.beat(slot, now)
            listening: list[int] | None = None
            woke = False
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
                    woke = True
            if woke:
                # After the connections' events: one of a connection handed back by its
                # request (gthread, gevent) was reported while it was busy, and is stale.
                self._on_wake()
            if listening is not None:
                # After the turn's other work, so that an idle sibling woken
                # for the same connections had the time to take them; then as
                # many as the connections just served (the fairness rule).
                batch = max(self.accept_batch, len(events) - len(listening))
                for fd in listening:
                    self._on_listener(fd, batch)
            if self.held:
                self._send_held()
            if self.reopen_requested:
                # USR1 came during the turn (a sync worker in the app): what the turn
                # answered after it goes to the new files, as what comes next does.
                self._reopen_logs()
            if access is not None:
                access.flush()  # the access records of this turn, in one write
            if now >= self.next_publish:
                self._publish(now)
            if now >= self.next_tick:
                self._tick(now)
        self._close_all()
        self._publish(time.monotonic())  # before the master reaps it and reads its slot

    def wait_events(self, timeout: float) -> list[tuple[int, int]]:
        """Wait up to `timeout` seconds for epoll's events (a cooperative kind: in its hub)."""
        return self.epoll.poll(timeout)

    def publish_counts(self) -> None:
        """Hand the counts not yet published to the scoreboard now (an abort, a fast exit)."""
        self._publish(time.monotonic())

    def _publish(self, now: float) -> None:
        """Hand the counts kept since the last time to the scoreboard: every PUBLISH_INTERVAL
        while the worker is busy, and before it waits idle (`serve`)."""
        self.next_publish = now + PUBLISH_INTERVAL
        if self.statuses or self.durations:
            # Swapped, not cleared: a gthread thread appends to whichever list it finds.
            statuses, self.statuses = self.statuses, []
            durations, self.durations = self.durations, []
            self.scoreboard.publish(self.slot, statuses, durations)

    def _tick(self, now: float) -> None:
        """Run the timers that are due: the sweep, the end of an accept back-off."""
        if now >= self.next_sweep:
            self._sweep(now)
            self._publish(now)
            self.next_sweep = now + SWEEP_INTERVAL
        if self.admission.resume(now):
            self.listen_again()
        self._set_timer(now)

    def _set_timer(self, now: float) -> None:
        resume = self.admission.resume_at
        self.next_tick = min(self.next_sweep, resume) if resume else self.next_sweep
        self.poll_timeout = max(0.0, min(self.idle_wait, self.next_tick - now))

    def request_limit_of(self, settings: RuntimeSettings) -> float:
        """How long one request may run (0: unbounded), which its waits for the client respect.

        sync: `timeout`, the heartbeat's, since the master aborts a worker stuck in one
        request. Kinds that end a request themselves choose their own (`request_timeout`).
        """
        return settings.timeout

    def wait_deadline(self) -> float:
        """When a wait for the client gives up: before the master's heartbeat timeout.

        The heartbeat was stamped when the running request began (or
        earlier), so the request ends, and stamps it again, before the
        master would take the worker for hung; the app sees a failed read or
        write (a slow client), not a killed worker.
        """
        return self.scoreboard.last(self.slot) + self.timeout - self.wait_margin

    def _on_wake(self) -> None:
        # One read: what it leaves (rare) makes epoll report the pipe again.
        # (try, not contextlib.suppress: this runs on every gthread loop turn.)
        try:  # noqa: SIM105 - see above: suppress() costs a context manager per turn
            unpatched.OS_READ(self.wake_r, 4096)
        except BlockingIOError:
            pass
        run_signal_handlers()  # a signal's byte: its Python handler may not have run yet
        if self.reopen_requested:
            self._reopen_logs()
        self.on_wake()

    def _reopen_logs(self) -> None:
        """USR1: reopen the log files (logrotate moved them)."""
        self.reopen_requested = False
        self.ctx.logs.reopen()
        self.errors_stream = self.ctx.logs.error_stream

    def on_wake(self) -> None:
        """The wake-up pipe was written to (a signal, or a kind's own thread)."""

    def _stopping(self) -> bool:
        """Called while a graceful stop runs; False once the loop may end."""
        now = time.monotonic()
        if not self.stop_deadline:
            self.stop_deadline = now + self.stop_grace
            self.scoreboard.set_state(self.slot, scoreboard_mod.STOPPING)
            worker_stops()  # (a signal's handler did already; max_requests, an orphan not)
            if self.admission.watching:
                # A connection that came since the last turn may have woken this worker
                # alone (see `_on_listener`): its wake-up goes with the listeners, so take
                # what one wake-up takes. (No more: a worker recycled by max_requests would
                # serve well past its budget.)
                for fd in list(self.admission.listeners):
                    self._on_listener(fd, self.accept_batch)
            self.admission.close()
            board = self.scoreboard
            server_stops = (
                self.orphaned or board.state(board.master_slot) == scoreboard_mod.STOPPING
            )
            for conn in list(self.conns.values()):
                if conn.handshaking:
                    self._close(conn)  # TLS not set up yet: no request can be under way
                elif server_stops and self._idle(conn) and not _has_input(conn):
                    # Waiting for a next request no worker of this server will serve: the
                    # stop need not wait `keepalive` for it (gunicorn#3227). Closed at once,
                    # not half-closed: with no unread input the kernel ends it with a FIN,
                    # not a reset, and a lingering close would wait up to LINGER_SECONDS for
                    # a client that keeps its end open (a pooled HTTP client reads nothing
                    # until its next request). A request still on the wire gets a reset
                    # instead of an end: dropped unanswered either way, for the client to
                    # retry (RFC 9112 §9.3.1). One that came while the worker was busy (a
                    # sync worker in the app) is in the kernel already: it is read and
                    # answered, with `Connection: close`.
                    self._close(conn)
            self.log.info("worker.stopping", connections=len(self.conns))
            # A worker retired while the server goes on (a reload, max_requests) keeps its
            # idle keep-alive connections: a client may have its next request on the wire
            # already. That request is answered with `Connection: close`; quiet connections
            # go at their keep-alive timeout (the sweep).
        return bool(self.conns) and now < self.stop_deadline

    def _on_listener(self, fd: int, batch: int) -> None:
        """Accept up to `batch` connections and read each at once.

        Reading at once (the request usually arrived with the handshake) and
        accepting few at a time keep a busy sync worker from taking
        connections that an idle sibling, woken by the same listener, could
        serve sooner.
        """
        # Even when stopping or recycling: the kernel woke this worker, and no other, for
        # these connections (EPOLLEXCLUSIVE), so leaving them would strand them in the accept
        # queue until another one arrives. They are served with `Connection: close`; the
        # listeners are left at the next turn (`_stopping`).
        admission = self.admission
        now = time.monotonic()
        for taken in range(batch):
            if taken and not self.may_accept():
                # The kind has no room for more (gthread: every thread taken; it stopped
                # watching the listeners). The first is always taken: the kernel may have
                # woken this worker alone for it. What is left waits for a sibling, woken
                # for the connections that came while this worker ran, or for this worker
                # to watch again once it has room.
                return
            # At worker_connections, the connection idle the longest makes room, once a new
            # one is accepted (gunicorn#2585); with none idle, the listeners wait.
            idle: Connection | None = None
            if len(self.conns) >= self.max_connections:
                idle = self._longest_idle()
                if idle is None:
                    admission.watch(False)
                    return
            try:
                sock, base, proxy, secure = admission.accept(fd)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue  # that connection's own failure: the next may be fine
                if admission.failed(exc, now, len(self.conns)):
                    self.alive = False  # stops gracefully: the master starts a replacement
                self._set_timer(now)
                return
            if idle is not None:
                self.log.debug("connection.evicted", peer=idle.peer, reason="worker_connections")
                self._close(idle)
            peer = base["REMOTE_ADDR"]
            parser = RequestParser(self.limits, self.forwarding.rules(peer))
            if secure:
                conn = self._tls_connection(sock, parser, base, proxy is None)
                conn.head_started = now  # the handshake has header_timeout, as a head
            else:
                conn = Connection(sock, parser, base, self.io_timeout, self.deadline)
            conn.holds = self.holds_responses
            conn.waiter = self.io_waiter
            self.conns[conn.fd] = conn
            if proxy is not None:
                conn.proxy_allowed = self.proxy_allow.allows(peer)
                if not (conn.proxy_allowed or self.proxy_optional):
                    self._reject(conn, ProtocolError(403, "PROXY header from a peer not allowed"))
                    continue
                conn.proxy = ProxyHeaderReader(proxy, self.proxy_optional)
                conn.head_started = now
            self._on_readable(conn, now)
            # Registered only now, and only if still open and waiting: a
            # connection answered and closed at once never costs an epoll call
            # (nor does one whose response is held: the end of the turn decides).
            if (
                not conn.events
                and not conn.busy
                and not conn.out
                and self.conns.get(conn.fd) is conn
            ):
                self._watch(conn, EPOLLIN)

    def _tls_connection(
        self, sock: socket.socket, parser: RequestParser, base: dict[str, Any], start: bool
    ) -> Connection:
        """An HTTPS connection; its handshake begins now, or after its PROXY header."""
        from wsgid.workers.tls_connection import TLSConnection

        assert self.tls is not None
        conn = TLSConnection(
            sock,
            parser,
            base,
            self.io_timeout,
            self.deadline,
            self.tls,
            self.settings.suppress_ragged_eofs,
        )
        if start:
            conn.start_tls()
        return conn

    def _on_readable(self, conn: Connection, now: float) -> None:
        if conn.handshaking and not conn.linger_until and not self._handshake(conn, now):
            return
        try:
            data = conn.receive()
        except OSError:
            self._close(conn)
            return
        if data is None:
            return
        if not data:
            self._close(conn)
            return
        if conn.linger_until or conn.error is not None:
            return  # draining what the client still sends after our close
        if conn.proxy is not None:
            data = self._proxy_header(conn, data, now)
            if not data:
                return
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
        if conn.ended and not (conn.busy or conn.out) and self.conns.get(conn.fd) is conn:
            # What the next read would find after a plain client's FIN; queued output or a
            # request in the pool is finished first (`_after_output`).
            self._close(conn)

    def _handshake(self, conn: Connection, now: float) -> bool:
        """Go on with `conn`'s TLS handshake (after its PROXY header); True once it is done."""
        if conn.proxy is not None and not self._tls_proxy_header(conn, now):
            return False
        try:
            state = conn.handshake()
        except OSError as exc:
            self._handshake_failed(conn, exc)
            return False
        if state == DONE:
            conn.last_active = now
            # Its last flight may still be queued (session tickets): it goes out first.
            self._watch(conn, EPOLLOUT if conn.out else EPOLLIN)
            return True
        self._watch(conn, EPOLLOUT if state == WANT_WRITE else EPOLLIN)
        return False

    def _tls_proxy_header(self, conn: Connection, now: float) -> bool:
        """Read the PROXY header that precedes a TLS handshake; True once it is read, and
        TLS begun with the bytes that followed it (the ClientHello's start)."""
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._close(conn)
            return False
        if not data:
            self._close(conn)
            return False
        rest = self._proxy_header(conn, data, now)
        if conn.proxy is not None or self.conns.get(conn.fd) is not conn or conn.closing:
            return False  # the header goes on in bytes still to come, or it was refused
        conn.start_tls(rest)
        return True

    def _handshake_failed(self, conn: Connection, exc: OSError) -> None:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        if reason in ("HTTP_REQUEST", "HTTPS_PROXY_REQUEST") or conn.plain_text_sent():
            # Plain HTTP on an HTTPS listener: say so in plain HTTP (as nginx does), not
            # with a TLS alert the client cannot read. OpenSSL names only GET, POST, HEAD,
            # PUT and CONNECT; any request line (DELETE, OPTIONS, an HTTP/2 preface) begins
            # with a letter, which no TLS record does.
            conn.handshaking = False
            self.log.info(
                "request.rejected",
                status=400,
                reason="plain HTTP sent to an HTTPS listener",
                peer=conn.peer,
            )
            self.statuses.append(400)
            if self.access is not None:
                self.access.rejected(conn.base, 400)
            try:  # noqa: SIM105 - one write, raw: the client speaks no TLS
                unpatched.OS_WRITE(conn.fd, error_response(400, self.dates))
            except OSError:
                pass
            conn.closing = True
            self._close(conn, linger=True)
            return
        self.log.debug("tls.handshake_failed", peer=conn.peer, reason=reason)
        self._close(conn)

    def _proxy_header(self, conn: Connection, data: bytes, now: float) -> bytes:
        """Read `conn`'s PROXY header from `data`; the bytes after it (b"": none yet, or refused).

        Its client address, and the rest of what it says, become the connection's own:
        every request on it is the client's (`environ.proxied`).
        """
        reader = conn.proxy
        assert reader is not None
        try:
            found = reader.feed(data)
        except ProtocolError as exc:
            self._reject(conn, exc)
            return b""
        if found is None:
            return b""
        info, rest = found
        conn.proxy = None
        conn.last_active = now
        if info is not None:
            if not conn.proxy_allowed:
                self._reject(conn, ProtocolError(403, "PROXY header from a peer not allowed"))
                return b""
            conn.base = environ_mod.proxied(conn.base, info)
            conn.peer = conn.base["REMOTE_ADDR"]
            if info.client is not None:
                # The HTTP bytes are the client's from here on (an L4 proxy does not touch
                # them): its forwarded headers count only if it is trusted itself.
                conn.parser.rules = self.forwarding.rules(conn.peer)
        return rest

    def _process(self, conn: Connection) -> None:
        """Handle the complete requests queued on `conn`, in order."""
        ready = conn.parser.ready
        small = self.small_body
        while ready and not conn.out and not conn.closing and not conn.busy:
            req = ready[0]
            if not (
                req.body_complete or (req.content_length or 0) > small or len(req.body) >= small
            ):
                if conn.error is None:
                    if conn.awaiting is not req:
                        # The head just ended: the body's deadline runs from now.
                        conn.awaiting = req
                        conn.body_since = monotonic()
                        if req.expect_continue:
                            self._ask_for_body(conn, req)
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

    def _ask_for_body(self, conn: Connection, req: Request) -> None:
        """`100 Continue` now, for a client that awaits it before sending a body this loop
        reads itself (small): PEP 3333's first way. The body then arrives under the body
        deadline as any small one does; asked for only when the app read it, it was waited
        for in the app, and a client that never sent it held a sync worker for `timeout`.
        A larger body is still asked for only when the app reads it."""
        req.expect_continue = False
        conn.send(CONTINUE)
        if conn.out:
            self._watch(conn, EPOLLOUT)  # (rare: the rest goes before the body is read)

    def handle(self, conn: Connection, req: Request) -> None:
        """Serve one complete request; the kind decides where the app runs."""
        raise NotImplementedError

    def run_request(
        self, conn: Connection, req: Request, worker_keeps: bool, record: int = 0
    ) -> None:
        """Call the app for `req` and send the response; then hooks and the access log.

        `worker_keeps`: whether this worker lets the connection stay open
        (`allows_keep_alive`). `record`: the scoreboard record that shows the
        request while it runs (< 0: none). Runs in the loop's thread (sync) or
        a pool thread (gthread); it touches only `conn` and `req`, never the
        loop's tables.
        """
        access = self.access
        scoreboard = self.scoreboard
        slot = self.slot
        rid = request_id.choose(req.incoming_id)
        started = monotonic()
        scoreboard.begin(slot, record, req.method, req.path, rid, started)
        self.current = (req, conn.peer, conn.last_active)
        status = 0  # no response: the client left
        try:
            if self.pre_request_hook:
                self.hooks.call("pre_request", self, req)
            try:
                resp = self.exchange.run(conn.base, req, conn, worker_keeps, rid)
            except OSError:
                # The client went away while the response was being written:
                # drop what is queued and let the loop close the connection.
                conn.out.clear()
                conn.out_size = 0
                conn.closing = True
                return
            status = resp.status_code
        finally:
            self.current = None
            elapsed_us = int((monotonic() - started) * 1e6)
            self.last_call_us = elapsed_us
            scoreboard.finish(slot, record)
            self.durations.append(elapsed_us)
            if status and not conn.timed_out:
                self.statuses.append(status)
        keep_alive = resp.keep_alive()
        if keep_alive and not req.body_complete:
            req.discard_body = True  # the rest is dropped as it arrives (the rule found it cheap)
        if req.body:
            req.body = b""  # what the app left unread
        if not keep_alive:
            conn.closing = True
            conn.client_closed = not req.keep_alive and req.body_complete
            if resp.broken and resp.head_sent:
                conn.cut()  # over TLS, no close_notify after a body cut short
        if self.post_request_hook:
            self.call_post_request(conn, req, resp)
        if access is not None and not conn.timed_out:
            full = access_capture(
                self.access_pending, req, status, resp.bytes_sent, resp.environ, resp.headers,
                elapsed_us,
            )  # fmt: skip
            if full:
                access.flush()

    def timed_out_answer(
        self, conn: Connection, req: Request, started: float, head: bool = False
    ) -> bytes:
        """The 503 for a request past request_timeout, counted and logged as its answer (the
        request's line, headers, peer and timing; not its id, which only the environ the
        app's thread or greenlet holds has)."""
        response = error_response(503, self.dates, head=head)
        conn.timeout_answer = response
        self.statuses.append(503)
        if self.access is not None:
            elapsed_us = int((time.monotonic() - started) * 1e6)
            environ = conn.base.copy()
            environ.update(req.environ)  # the header fields, as the parser keyed them
            self.access.request(req, 503, len(response), environ, (), elapsed_us)
        return response

    def call_post_request(self, conn: Connection, req: Request, resp: Response) -> None:
        """The post_request hook, told what the client got (`as_answered`)."""
        if conn.timed_out:
            self.as_answered(conn, resp)
        self.hooks.call("post_request", self, req, resp.environ, resp)

    def as_answered(self, conn: Connection, resp: Response) -> None:
        """Make `resp` (the app's late response to a timed-out request) say what its client
        got instead: the worker's answer (`timed_out_answer`), its status, header fields and
        body size. A cut connection leaves it as it is: the app's response had begun."""
        answer = conn.timeout_answer
        if not answer:
            return
        end = answer.index(b"\r\n\r\n")
        status_line, *lines = answer[:end].decode("latin-1").split("\r\n")
        resp.status = status_line.partition(" ")[2]
        resp.status_code = int(resp.status[:3])
        resp.headers = [(name, value) for name, _, value in (f.partition(": ") for f in lines)]
        resp.bytes_sent = len(answer) - end - 4

    def report_timeout(
        self,
        conn: Connection,
        req: Request,
        elapsed: float,
        answer: str,
        stack: str,
        limit: float,
        **where: str,
    ) -> None:
        """Log a request that ran past its `limit` (gthread, gevent...): `answer` is 503 or
        cut, `stack` where it was, `where` the kind's own fields (its thread)."""
        self.log.error(
            "worker.request_timeout",
            timeout=limit,
            elapsed=round(elapsed, 3),
            method=req.method,
            path=req.path.decode("latin-1"),
            peer=conn.peer,
            answer=answer,
            stack=stack,
            **where,
        )

    def allows_keep_alive(self) -> bool:
        """Count a request against max_requests; whether this worker lets its connection stay open.

        The worker's part of the keep-alive rule (`Response.keep_alive`).
        """
        if self.requests_left:  # every request counts against max_requests
            self.requests_left -= 1
            if self.requests_left == 0:
                self.log.info("worker.max_requests", action="recycling")
                self.scoreboard.set_exit_reason(self.slot, scoreboard_mod.EXIT_MAX_REQUESTS)
                self.alive = False
                return False
        return self.alive and self.keepalive > 0

    def _after_output(self, conn: Connection) -> None:
        """Switch between reading and writing, or close, as the queue dictates."""
        if conn.holding:
            self._hold(conn)
            return
        if conn.out:
            self._watch(conn, EPOLLOUT)
            return
        if conn.closing:
            self._close(conn, linger=True)
            return
        if conn.ended and not (conn.parser.ready or conn.error is not None):
            # TLS: the client said it sends nothing more (close_notify), once the requests
            # it sent before that are answered, as after a plain client's FIN.
            self._close(conn)
            return
        if conn.events != EPOLLIN:
            self._watch(conn, EPOLLIN)
        conn.last_active = monotonic()

    def handed_back(self, conn: Connection) -> None:
        """Go on with `conn` after the request that had it elsewhere (a pool thread, a
        greenlet) is done; a connection taken from it meanwhile (`taken`) is closed."""
        conn.busy = False
        if self.conns.get(conn.fd) is not conn:
            return
        if conn.closing and conn.fd in self.taken:
            # Not lingered on: epoll would keep the dead socket, which
            # other descriptors share, registered after the close.
            self.taken.discard(conn.fd)
            self._close(conn)
            return
        self._after_output(conn)
        if conn.fd in self.conns and (conn.parser.ready or conn.error is not None):
            self._process(conn)

    def _hold(self, conn: Connection) -> None:
        """Keep `conn`'s response for the end of the turn ("Held responses")."""
        conn.holding = False
        self.held.append(conn)
        if not self.unsent_since:
            self.unsent_since = monotonic()

    def release_held(self) -> None:
        """Send what the held responses still hold, before an app call that may take long.

        Only the bytes: the end of the turn (`_send_held`) does the rest for each connection.
        """
        held = self.held
        for i in range(self.unsent_from, len(held)):
            try:  # noqa: SIM105 - a failed connection is closed at the end of the turn
                held[i].flush()
            except OSError:
                pass
        self.unsent_from = len(held)
        self.unsent_since = 0.0

    def _send_held(self) -> None:
        """Send the held responses and go on with each connection as after any output."""
        while self.held:  # going on may hold a pipelined request's response again
            held, self.held = self.held, []
            self.unsent_from = 0
            self.unsent_since = 0.0
            for conn in held:
                if self.conns.get(conn.fd) is conn:  # (not closed meanwhile)
                    self._on_writable(conn)

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
        conn.outq = -1  # the sweep's next look at the send queue is a first one
        try:
            done = conn.flush()
        except OSError:
            self._close(conn)
            return
        if not done:
            conn.last_active = monotonic()  # the client took what the kernel held: progress
            self._watch(conn, EPOLLOUT)  # (already so, unless its output was held)
            return
        if conn.handshaking:
            conn.last_active = monotonic()
            self._watch(conn, EPOLLIN)  # our flight went: the client's turn
            return
        self._after_output(conn)  # which stamps last_active, unless it closes
        if conn.fd in self.conns and (conn.parser.ready or conn.error is not None):
            self._process(conn)

    def _reject(self, conn: Connection, exc: ProtocolError) -> None:
        """Answer a protocol error and close (the byte stream is untrusted now)."""
        self.log.info("request.rejected", status=exc.status, reason=exc.reason, peer=conn.peer)
        self.statuses.append(exc.status)
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
                conn.shutdown_write()
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
        conn.close()
        if not self.admission.watching:
            self.listen_again()

    def listen_again(self) -> None:
        """Watch the listeners again unless something still holds them off: a stop, an
        accept back-off, the connection cap (`worker_connections`), or the kind itself
        (`may_accept`)."""
        admission = self.admission
        if (
            self.alive
            and not admission.watching
            and not admission.resume_at
            and len(self.conns) < self.max_connections
            and self.may_accept()
        ):
            admission.watch(True)

    def may_accept(self) -> bool:
        """Whether the kind can take new connections now (gthread: not while every thread of
        its pool is taken, `ThreadWorker.may_accept`). Asked wherever the loop would watch
        the listeners again, and before each accept but the first of a wake-up."""
        return True

    @staticmethod
    def _idle(conn: Connection) -> bool:
        """Whether `conn` is an idle keep-alive connection: it was answered, and nothing of
        a next request has come."""
        return (
            conn.responded
            and not (conn.busy or conn.out or conn.closing or conn.linger_until)
            and conn.proxy is None
            and not conn.parser.in_head
            and not conn.parser.ready
        )

    def _longest_idle(self) -> Connection | None:
        """The idle keep-alive connection idle the longest; None: every connection has a
        request under way.

        At `worker_connections` it makes room for a new client (`_on_listener`): else idle
        connections would hold every place, and a new client would wait in the accept queue
        until one reaches its keep-alive timeout (gunicorn#2585).
        """
        oldest: Connection | None = None
        for conn in self.conns.values():
            if self._idle(conn) and (oldest is None or conn.last_active < oldest.last_active):
                oldest = conn
        return oldest

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
        """Close connections past their deadlines: idle, PROXY header, head, body, write, linger.

        Also listen again at `worker_connections` once a connection went idle: a new client
        then takes its place (`_on_listener`).
        """
        self.check_master()
        admission = self.admission
        if (
            self.alive
            and not admission.watching
            and not admission.resume_at
            and self.may_accept()
            and any(self._idle(conn) for conn in self.conns.values())
        ):
            admission.watch(True)
        keepalive = self.keepalive
        for conn in list(self.conns.values()):
            if conn.busy:
                continue  # its thread is bounded by the I/O timeout itself
            if conn.linger_until:
                if now > conn.linger_until:
                    self._close(conn)
            elif conn.handshaking and conn.proxy is None:
                # A TLS handshake has header_timeout, as a head (and as the PROXY header
                # before it, refused below): a client that stalls it costs this connection.
                if now - conn.head_started > self.header_timeout:
                    self.log.debug("tls.handshake_timeout", peer=conn.peer)
                    self._close(conn)
            elif conn.out:
                # A slow reader: the socket is not writable again until much of its send
                # queue drained, but a queue going down is a client reading (`unsent`).
                # The first look since the output began, or since the socket was last
                # writable, has nothing to compare with: it counts as progress.
                queued = unsent(conn.fd)
                if queued >= 0 and (conn.outq < 0 or queued < conn.outq):
                    conn.last_active = now
                conn.outq = queued
                if now - conn.last_active > self.io_timeout:
                    self._close(conn)
            elif conn.proxy is not None:
                if now - conn.head_started > self.header_timeout:
                    self._reject(conn, ProtocolError(408, "PROXY header not received in time"))
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


def _has_input(conn: Connection) -> bool:
    """Whether the client sent bytes that wait in the kernel, not yet read."""
    try:
        return bool(conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing yet (EAGAIN), or the connection failed: nothing to answer
        return False
