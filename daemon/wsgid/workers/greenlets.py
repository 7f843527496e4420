"""The gevent worker: the epoll loop in the main greenlet, each request in a greenlet of its own.

Owns: monkey-patching the worker process before anything else runs in it, waiting for the
loop's epoll instance in gevent's hub, running each request in a greenlet and taking the
connection back when it is done, the waits of those greenlets for their clients, and the
report of a hub that something blocks.

Design (docs/architecture.md, "The gevent worker"). The connections are driven by the same
loop as sync and gthread (`loop.py`): the same parser and policy, TLS handshakes, PROXY
headers, keep-alive, deadlines, fairness and graceful stop, none of gevent's own HTTP server.
The loop's epoll instance (the standard library's, bound before the patch: `unpatched.py`)
is itself a descriptor, readable when any connection is: the loop waits for it in the hub
(`wait_events`), so the request greenlets run while it waits, then takes the events
without blocking. A complete request goes to a greenlet (a parked one, or a new one) as
gthread hands one to a pool thread (the connection is `busy` meanwhile, and comes back
through the wake-up pipe); the greenlet's
waits for its client (more body, a slow reader) wait in the hub (`Connection.waiter`), so a
request that waits for the network, for its database or for another service through the
patched standard library holds one greenlet, never the worker.

Patching. `prepare_process` runs first in the forked worker (`Master._worker_main`), before
the app is imported: the app's locks, sockets and thread-locals are gevent's. The master is
never patched and never imports gevent (it imports this module to resolve `worker_class`).
`preload_app` is refused with this kind (settings validation): the app would be imported in
the master, before any patch.

`timeout` bounds each request, as in the other kinds: past it the request is reported with
its greenlet's stack (`worker.request_timeout`) and ended where it waits, answered 503 if
nothing of its response went out. It is also the heartbeat: the loop stamps it each turn, so
the master kills the worker only when something blocks the hub (CPU-bound code, a C
library's blocking call). gevent's monitor thread reports such a block, with the blocking
greenlet's stack, well before (`worker.hub_blocked`).
"""

from __future__ import annotations

import os
import select
import time
import traceback
import warnings
from typing import Any, ClassVar

from wsgid.http.errors import error_response
from wsgid.http.request import Request
from wsgid.workers.connection import Connection
from wsgid.workers.loop import ConnectionLoop

# A hub blocked for this long is reported (at most; less with a short `timeout`).
BLOCK_REPORT_SECONDS = 1.0
# Request greenlets kept, once their request ended, for the next requests (`_serve`).
PARKED_MAX = 64


class RequestTimeout(BaseException):
    """Thrown into a request's greenlet past `timeout`. Not an Exception: an app's
    `except Exception` around its I/O must not swallow it."""


class _TimedOut(Exception):
    """A wait in the hub ran out of time (raised by gevent, caught here)."""


_TIMED_OUT = _TimedOut()


class GeventWorker(ConnectionLoop):
    kind: ClassVar[str] = "gevent"
    multithread: ClassVar[bool] = True  # requests of a worker run side by side (PEP 3333)
    accept_batch: ClassVar[int] = 16  # the loop never waits for the app, as in gthread
    # A greenlet leaves its response's last bytes to the loop, which sends them with the
    # others of its turn (loop.py, "Held responses"); the loop calls no app.
    holds_responses: ClassVar[bool] = True

    @classmethod
    def prepare_process(cls) -> None:
        import gevent
        from gevent import monkey

        # Read by the hub when it is made (the first wait): the monitor thread watches it.
        gevent.config.monitor_thread = True
        gevent.config.max_blocking_time = BLOCK_REPORT_SECONDS
        # Its memory watch needs psutil and would warn on every start without it; wsgid
        # recycles workers by memory itself (max_worker_memory).
        warnings.filterwarnings(
            "ignore", message="Unable to monitor memory usage", module="gevent._monitor"
        )
        monkey.patch_all()

    def setup(self) -> None:
        super().setup()
        import gevent
        import gevent.events
        from gevent.socket import wait_read, wait_write

        self._spawn = gevent.spawn_raw
        hub = gevent.get_hub()
        self._park = hub.switch
        self._run_callback = hub.loop.run_callback
        self._sleep = gevent.sleep
        self.parked: list[Any] = []  # request greenlets waiting for a request (`_serve`)
        self._current = gevent.getcurrent
        self._greenlet_exit: type[BaseException] = gevent.GreenletExit
        self._wait_read = wait_read
        self._wait_write = wait_write
        self.io_waiter = self._wait_io
        self.done: list[Connection] = []
        # Request greenlet -> its connection, request, start and scoreboard record.
        self.running: dict[Any, tuple[Connection, Request, float, int]] = {}
        self.timed_out: set[Any] = set()  # greenlets told of their timeout, not ended yet
        self.free_records = list(range(self.scoreboard.records))
        self.wake_pending = False
        if self.timeout:
            gevent.config.max_blocking_time = min(BLOCK_REPORT_SECONDS, self.timeout / 2)
        gevent.events.subscribers.append(self._on_gevent_event)

    def wait_events(self, timeout: float) -> list[tuple[int, int]]:
        # Always through the hub, events pending or not: the request greenlets run there.
        epoll = self.epoll
        try:
            self._wait_read(epoll.fileno(), timeout=timeout, timeout_exc=_TIMED_OUT)
        except _TimedOut:
            return []
        return epoll.poll(0)

    def handle(self, conn: Connection, req: Request) -> None:
        worker_keeps = self.allows_keep_alive()
        # Still registered: an event meanwhile makes the loop unregister it (as gthread).
        conn.busy = True
        conn.responded = False
        job = (conn, req, worker_keeps)
        parked = self.parked
        while parked:
            idle = parked.pop()
            if not idle.dead:
                self._run_callback(idle.switch, job)  # the hub hands it the job
                return
        self._spawn(self._serve, job)

    def _serve(self, job: tuple[Connection, Request, bool]) -> None:
        """A request greenlet: run `job`, then wait parked for the next one.

        Reused because a new greenlet is not free: Python gives each its own frame stack,
        which it maps and unmaps (an mmap and a munmap per request, measured with strace).
        """
        me = self._current()
        while True:
            self._run(me, *job)
            if not self.alive or len(self.parked) >= PARKED_MAX:
                return
            self.parked.append(me)
            job = self._park()  # until `handle` schedules this greenlet with a job

    def _run(self, me: Any, conn: Connection, req: Request, worker_keeps: bool) -> None:
        # A record shows the request on the scoreboard (`wsgid status`); past the records
        # there are, requests are counted, not shown.
        record = self.free_records.pop() if self.free_records else -1
        self.running[me] = (conn, req, time.monotonic(), record)
        try:
            self.run_request(conn, req, worker_keeps, record)
        except RequestTimeout:
            self._answer_timeout(conn, req)
        except BaseException as exc:
            # GreenletExit: the stop killed it (`_close_all`); the connection goes too.
            if not isinstance(exc, self._greenlet_exit):
                self.log.exception("worker.greenlet_error")
            conn.closing = True
        finally:
            del self.running[me]
            self.timed_out.discard(me)
            if record >= 0:
                self.free_records.append(record)
        self.done.append(conn)
        # One wake-up byte per loop turn (see gthread's `_thread_main`).
        if not self.wake_pending:
            self.wake_pending = True
            try:  # noqa: SIM105 - once per response
                os.write(self.wake_w, b"\0")
            except BlockingIOError:
                pass

    def _wait_io(self, fd: int, event: int, timeout: float) -> bool:
        wait = self._wait_read if event == select.POLLIN else self._wait_write
        try:
            wait(fd, timeout=timeout, timeout_exc=_TIMED_OUT)
        except _TimedOut:
            return False
        return True

    def wait_deadline(self) -> float:
        """A request greenlet's waits for its client end before its request's `timeout`."""
        running = self.running.get(self._current())
        if running is None:
            return float("inf")
        return running[2] + self.timeout - self.wait_margin

    def _sweep(self, now: float) -> None:
        super()._sweep(now)
        if self.timeout:
            self._check_requests(now)

    def _check_requests(self, now: float) -> None:
        """Report the requests running past `timeout` and end them (`RequestTimeout`).

        As gthread's pool check, but a greenlet can be stopped where it waits: it answers
        503 itself if nothing of its response went out yet (`_answer_timeout`).
        """
        for me, (conn, req, started, _) in list(self.running.items()):
            elapsed = now - started
            # An Upgrade request (a WebSocket taken over) lives as long as its client.
            if elapsed <= self.timeout or me in self.timed_out or req.upgrade:
                continue
            self.timed_out.add(me)
            running = self.running[me]
            frame = me.gr_frame
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            self.report_timeout(conn, req, elapsed, "cut" if conn.responded else "503", stack)
            # Thrown by the hub (where a greenlet is killed from), to this request only.
            self._run_callback(self._time_out, me, running)

    def _time_out(self, me: Any, running: tuple[Connection, Request, float, int]) -> None:
        if self.running.get(me) is running:  # not ended meanwhile, and parked or reused
            me.throw(RequestTimeout)

    def _answer_timeout(self, conn: Connection, req: Request) -> None:
        """In the greenlet ended by its timeout: answer 503, or cut the connection if part
        of the response went out (a 503 after it would read as the next response)."""
        conn.closing = True
        if conn.responded:
            return
        conn.out.clear()
        conn.out_size = 0
        self.statuses.append(503)
        if self.access is not None:
            self.access.rejected(conn.base, 503)
        try:  # noqa: SIM105 - the loop closes a connection whose send failed
            conn.send(error_response(503, self.dates, head=req.method == "HEAD"))
        except OSError:
            pass

    def on_wake(self) -> None:
        self.wake_pending = False
        done, self.done = self.done, []
        for conn in done:
            self.handed_back(conn)

    def _on_gevent_event(self, event: object) -> None:
        """gevent's monitor thread saw the hub blocked: say by what (from that thread)."""
        from gevent.events import EventLoopBlocked

        if isinstance(event, EventLoopBlocked):
            self.log.error(
                "worker.hub_blocked",
                blocked_for=round(event.blocking_time, 3),
                timeout=self.timeout,
                stack="\n".join(event.info),
            )

    def _close_all(self) -> None:
        # What still runs after graceful_timeout is ended before its connection closes.
        greenlet_exit = self._greenlet_exit
        for running in list(self.running):
            self._run_callback(running.throw, greenlet_exit)
        deadline = time.monotonic() + 1.0
        while self.running and time.monotonic() < deadline:
            self._sleep(0.01)
        super()._close_all()
