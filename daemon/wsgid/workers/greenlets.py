"""The cooperative workers, gevent and eventlet: the epoll loop in the main greenlet, each
request in a greenlet of its own.

Owns: monkey-patching the worker process before anything else runs in it, waiting for the
loop's epoll instance in the hub, running each request in a greenlet and taking the
connection back when it is done, the waits of those greenlets for their clients, the
per-request timeout, and the report of a hub that something blocks. `GreenletWorker` is
the core; `GeventWorker` and `EventletWorker` are its glue to one library's hub (how to
patch, wait for a descriptor, spawn, schedule, sleep, and watch for a blocked hub).

Design (docs/architecture.md, "The cooperative workers"). The connections are driven by
the same loop as sync and gthread (`loop.py`): the same parser and policy, TLS handshakes,
PROXY headers, keep-alive, deadlines, fairness and graceful stop, none of gevent's or
eventlet's own HTTP server. The loop's epoll instance (the standard library's, bound
before the patch: `unpatched.py`) is itself a descriptor, readable when any connection
is: the loop waits for it in the hub (`wait_events`), so the request greenlets run while
it waits, then takes the events without blocking. A complete request goes to a greenlet
(a parked one, or a new one) as gthread hands one to a pool thread (the connection is
`busy` meanwhile, and comes back through the wake-up pipe); the greenlet's waits for its
client (more body, a slow reader) wait in the hub (`Connection.waiter`), so a request
that waits for the network, for its database or for another service through the patched
standard library holds one greenlet, never the worker.

Patching. `prepare_process` runs first in the forked worker (`Master._worker_main`),
before the app is imported: the app's locks, sockets and thread-locals are the library's.
The master is never patched and never imports gevent or eventlet (it imports this module
to resolve `worker_class`). `preload_app` is refused with these kinds (settings
validation): the app would be imported in the master, before any patch.

`request_timeout`, when set (it is off by default, as in gunicorn: long polls and event
streams are why these kinds are chosen), bounds each request: past it the request is
reported with its greenlet's stack (`worker.request_timeout`) and ended where it waits,
answered 503 if nothing of its response went out. `timeout` is the heartbeat: the loop
stamps it each turn, so the master kills the worker only when something blocks the hub
(CPU-bound code, a C library's blocking call). A block is reported, with the blocking
greenlet's stack, well before (`worker.hub_blocked`): by gevent's monitor thread, or for
eventlet by a thread of wsgid's that watches the heartbeat (`_watch_hub`).
"""

from __future__ import annotations

import _thread
import select
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from greenlet import GreenletExit, getcurrent

from wsgid.http.errors import Interrupted
from wsgid.http.request import Request
from wsgid.runtime import RuntimeSettings
from wsgid.workers import unpatched
from wsgid.workers.connection import Connection
from wsgid.workers.loop import ConnectionLoop

# A hub blocked for this long is reported (at most; less with a short `timeout`).
BLOCK_REPORT_SECONDS = 1.0
# Request greenlets kept, once their request ended, for the next requests (`_serve`).
PARKED_MAX = 64
# A thread's ident as the kernel's thread, bound before eventlet's patch makes the name
# answer a greenlet's id (this module is imported by the master, never patched).
_THREAD_IDENT = _thread.get_ident


# glibc's M_MMAP_THRESHOLD (mallopt), and its default: a block at least this large is mapped
# on its own, and unmapped when freed.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def _keep_big_blocks_mapped() -> None:
    """Fix glibc's mmap threshold at its default, after the patch.

    glibc raises the threshold to the size of any mapped block freed, and eventlet's patch
    frees a big one (its list of every object, `gc.get_objects()`, when it greens the
    locks that exist): the buffers of large request heads then come from the heap, whose
    freed middle is never given back, and a worker kept tens of MiB after a burst of such
    heads closed (tests/hardening/test_head_memory.py). Setting it keeps it fixed.
    """
    import contextlib
    import ctypes

    # Not glibc (musl has no mallopt): its own rules.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


class RequestTimeout(Interrupted):
    """Thrown into a request's greenlet past `request_timeout`."""


class _TimedOut(Exception):
    """A wait in the hub ran out of time (raised by the hub, caught here)."""


_TIMED_OUT = _TimedOut()


class GreenletWorker(ConnectionLoop):
    """The cooperative core. A kind sets the glue in `setup` (before calling this one's)."""

    multithread: ClassVar[bool] = True  # requests of a worker run side by side (PEP 3333)
    accept_batch: ClassVar[int] = 16  # the loop never waits for the app, as in gthread
    # A greenlet leaves its response's last bytes to the loop, which sends them with the
    # others of its turn (loop.py, "Held responses"); the loop calls no app.
    holds_responses: ClassVar[bool] = True

    # The glue to the hub.
    # Start `function(argument)` in a new greenlet, at the hub's next turn.
    _spawn: Callable[[Callable[[Any], None], Any], object]
    # Run `function(*args)` in the hub, at its next turn.
    _run_callback: Callable[..., object]
    # From a request greenlet: wait in the hub until switched to; what it was switched with.
    _park: Callable[[], Any]
    _sleep: Callable[[float], object]
    # Wait in the hub until `fd` is readable (or writable), up to `timeout` seconds; raises
    # `timeout_exc` past it.
    _wait_read: Callable[..., object]
    _wait_write: Callable[..., object]
    # Call `function()` in the hub once `fd` is readable, every time it is, until `_unwatch`
    # takes what it returned: the loop's epoll descriptor, registered with the hub once.
    _watch_fd: Callable[[int, Callable[[], None]], Any]
    _unwatch: Callable[[Any], None]
    # Call `function()` in the hub in `seconds`; what `_cancel` takes to call it off.
    _call_later: Callable[[float, Callable[[], None]], Any]
    _cancel: Callable[[Any], None]

    def setup(self) -> None:
        super().setup()
        self.parked: list[Any] = []  # request greenlets waiting for a request (`_serve`)
        self.io_waiter = self._wait_io
        self.done: list[Connection] = []
        # Request greenlet -> its connection, request, start and scoreboard record.
        self.running: dict[Any, tuple[Connection, Request, float, int]] = {}
        self.timed_out: set[Any] = set()  # greenlets told of their timeout, not ended yet
        self.free_records = list(range(self.scoreboard.records))
        self.wake_pending = False
        self.main = getcurrent()  # the loop's greenlet
        self.loop_waits = False  # the loop is parked in the hub (`wait_events`)
        # When the loop's next turn is due: the end of its wait in the hub while it waits,
        # the start of its turn while it runs (what `_watch_hub` measures a block from).
        self.turn_due = time.monotonic()
        self.reported_turn = 0.0  # `turn_due` when a blocked hub was last reported
        self.epoll_watch = self._watch_fd(self.epoll.fileno(), self._wake_loop)

    def request_limit_of(self, settings: RuntimeSettings) -> float:
        """`request_timeout` alone (off by default): a waiting greenlet holds nothing of the
        worker, and long polls and event streams are what these kinds are chosen for."""
        return settings.request_timeout

    @property
    def block_report_seconds(self) -> float:
        """How long the hub may be blocked before it is reported: well before the heartbeat
        timeout kills the worker (for eventlet's watcher, a turn is due up to `idle_wait`,
        half the timeout, after the last stamp: a quarter more still leaves a quarter)."""
        if self.timeout:
            return min(BLOCK_REPORT_SECONDS, self.timeout / 4)
        return BLOCK_REPORT_SECONDS

    def wait_events(self, timeout: float) -> list[tuple[int, int]]:
        """Park in the hub until the epoll instance is readable or `timeout` passed.

        Always through the hub, events pending or not: the request greenlets run there.
        The epoll descriptor stays registered with the hub's poller (`_watch_fd`, in `setup`):
        registering it anew each turn, as a wait for a descriptor does, made the kernel
        check the nested epoll for loops through every connection it holds, which cost a
        worker holding 5,000 idle connections a third of its throughput.
        """
        self.loop_waits = True
        self.turn_due = time.monotonic() + timeout
        timer = self._call_later(timeout, self._wake_loop)
        try:
            self._park()
        finally:
            self.turn_due = time.monotonic()
            self.loop_waits = False
            self._cancel(timer)
        return self.epoll.poll(0)

    def _wake_loop(self) -> None:
        """In the hub: the epoll instance is readable, or the loop's wait timed out."""
        if self.loop_waits:  # else the loop is already awake (or stopping: `_close_all`)
            self.loop_waits = False
            self.main.switch()

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
        me = getcurrent()
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
        started = time.monotonic()
        self.running[me] = (conn, req, started, record)
        try:
            self.run_request(conn, req, worker_keeps, record)
        except RequestTimeout as exc:
            self._answer_timeout(conn, req, started)
            # As run_request would have, had the app's call returned; not when the timeout
            # came in pre_request (no response yet) or in post_request itself (no second call).
            if exc.response is not None and self.post_request_hook:
                self.call_post_request(conn, req, exc.response)
        except BaseException as exc:
            # GreenletExit: the stop killed it (`_close_all`); the connection goes too.
            if not isinstance(exc, GreenletExit):
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
                unpatched.OS_WRITE(self.wake_w, b"\0")
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
        running = self.running.get(getcurrent())
        if running is None:
            return float("inf")
        return running[2] + self.request_limit - self.wait_margin

    def _sweep(self, now: float) -> None:
        super()._sweep(now)
        if self.request_limit:
            self._check_requests(now)

    def _check_requests(self, now: float) -> None:
        """Report the requests running past `timeout` and end them (`RequestTimeout`).

        As gthread's pool check, but a greenlet can be stopped where it waits: it answers
        503 itself if nothing of its response went out yet (`_answer_timeout`).
        """
        for me, (conn, req, started, _) in list(self.running.items()):
            elapsed = now - started
            # An Upgrade request (a WebSocket taken over) lives as long as its client.
            if elapsed <= self.request_limit or me in self.timed_out or req.upgrade:
                continue
            self.timed_out.add(me)
            running = self.running[me]
            frame = me.gr_frame
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            answer = "cut" if conn.responded else "503"
            self.report_timeout(conn, req, elapsed, answer, stack, self.request_limit)
            # Thrown by the hub (where a greenlet is killed from), to this request only.
            self._run_callback(self._time_out, me, running)

    def _time_out(self, me: Any, running: tuple[Connection, Request, float, int]) -> None:
        if self.running.get(me) is running:  # not ended meanwhile, and parked or reused
            me.throw(RequestTimeout)

    def _answer_timeout(self, conn: Connection, req: Request, started: float) -> None:
        """In the greenlet ended by its timeout: answer 503, or cut the connection if part
        of the response went out (a 503 after it would read as the next response)."""
        conn.closing = True
        conn.timed_out = True
        if conn.responded:
            return
        conn.out.clear()
        conn.out_size = 0
        answer = self.timed_out_answer(conn, req, started, head=req.method == "HEAD")
        try:  # noqa: SIM105 - the loop closes a connection whose send failed
            conn.send(answer)
        except OSError:
            pass

    def on_wake(self) -> None:
        self.wake_pending = False
        done, self.done = self.done, []
        for conn in done:
            self.handed_back(conn)

    def report_blocked(self, blocked_for: float, stack: str) -> None:
        """The hub was blocked for `blocked_for` seconds by what `stack` shows (called from
        the watching thread); once a block: gevent's monitor reports it again each period
        while it lasts, and the loop has not waited since."""
        if self.turn_due == self.reported_turn:
            return
        self.reported_turn = self.turn_due
        self.log.error(
            "worker.hub_blocked",
            blocked_for=round(blocked_for, 3),
            timeout=self.timeout,
            stack=stack,
        )

    def _close_all(self) -> None:
        # The loop waits no more: a readable epoll must not keep the hub busy meanwhile.
        self._unwatch(self.epoll_watch)
        # What still runs after graceful_timeout is ended before its connection closes.
        for running in list(self.running):
            self._run_callback(running.throw, GreenletExit)
        deadline = time.monotonic() + 1.0
        while self.running and time.monotonic() < deadline:
            self._sleep(0.01)
        super()._close_all()


class GeventWorker(GreenletWorker):
    kind: ClassVar[str] = "gevent"

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
        _keep_big_blocks_mapped()

    def setup(self) -> None:
        import gevent
        import gevent.events
        from gevent.socket import wait_read, wait_write

        hub = gevent.get_hub()
        # The worker's hub gets its monitor now (gevent would start it at the hub's first
        # run). A hub gevent makes later in another thread (the monitor's own, when its report
        # reprs a patched Thread and so takes a patched lock) must not get one: that second
        # monitor would report the first, asleep between its looks, as a blocked hub every
        # second for the worker's life.
        hub.start_periodic_monitoring_thread()
        gevent.config.monitor_thread = False
        self._hub = hub
        loop = hub.loop

        def watch(fd: int, function: Callable[[], None]) -> Any:
            watcher = loop.io(fd, 1)  # 1: readable
            watcher.start(function)
            return watcher

        def call_later(seconds: float, function: Callable[[], None]) -> Any:
            timer = loop.timer(seconds)
            timer.start(function)
            return timer

        self._spawn = gevent.spawn_raw
        self._run_callback = loop.run_callback
        self._park = hub.switch
        self._sleep = gevent.sleep
        self._wait_read = wait_read
        self._wait_write = wait_write
        self._watch_fd = watch
        self._unwatch = _close_watcher
        self._call_later = call_later
        self._cancel = _close_watcher
        super().setup()
        gevent.config.max_blocking_time = self.block_report_seconds
        gevent.events.subscribers.append(self._on_gevent_event)

    def _on_gevent_event(self, event: object) -> None:
        """gevent's monitor thread saw the hub blocked: say by what (from that thread)."""
        from gevent.events import EventLoopBlocked

        if isinstance(event, EventLoopBlocked) and event.hub in (None, self._hub):
            self.report_blocked(event.blocking_time, "\n".join(event.info))


class EventletWorker(GreenletWorker):
    kind: ClassVar[str] = "eventlet"

    @classmethod
    def prepare_process(cls) -> None:
        # The master says once, at start, that eventlet is deprecated (its registry entry);
        # eventlet's own import warning would say it again in every worker.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
        _keep_big_blocks_mapped()

    def setup(self) -> None:
        import eventlet
        from eventlet.hubs import get_hub, trampoline

        hub = get_hub()

        def run_callback(function: Callable[..., object], *args: Any) -> None:
            hub.schedule_call_global(0, function, *args)

        def wait_read(fd: int, timeout: float, timeout_exc: BaseException) -> None:
            trampoline(fd, read=True, timeout=timeout, timeout_exc=timeout_exc)

        def wait_write(fd: int, timeout: float, timeout_exc: BaseException) -> None:
            trampoline(fd, write=True, timeout=timeout, timeout_exc=timeout_exc)

        def watch(fd: int, function: Callable[[], None]) -> Any:
            return hub.add(hub.READ, fd, lambda _fd: function(), _raise, None)

        def call_later(seconds: float, function: Callable[[], None]) -> Any:
            return hub.schedule_call_global(seconds, function)

        self._spawn = eventlet.spawn_n
        self._run_callback = run_callback
        self._park = hub.switch
        self._sleep = eventlet.sleep
        self._wait_read = wait_read
        self._wait_write = wait_write
        self._watch_fd = watch
        self._unwatch = hub.remove
        self._call_later = call_later
        self._cancel = _cancel_timer
        super().setup()
        self.main_thread = _THREAD_IDENT()
        # eventlet's own detector (debug.hub_blocking_detection) interrupts the blocking
        # code with SIGALRM, "not for production" in its words: a thread watches instead.
        unpatched.start_thread(self._watch_hub, (sys._current_frames, unpatched.POLL()))

    def _watch_hub(self, frames: Callable[[], dict[int, Any]], poller: Any) -> None:
        """A real thread: report a loop turn that is late, with the main thread's stack.

        A turn needs the hub, and is due when the loop's wait in the hub ends (at most
        `idle_wait` after the last one), or, while it runs, since it began: a turn later
        than `block_report_seconds` past that means the greenlet running now in the main
        thread, whatever it is, has not let the hub run since. (Measured from the
        heartbeat's stamp alone, an idle worker's turns, as long as the limit, were
        reported as blocks.)
        """
        main = self.main_thread
        limit = self.block_report_seconds
        reported = 0.0  # the due time a block was reported for: once per block
        interval_ms = int(limit * 250)
        while self.alive or self.running:
            poller.poll(interval_ms)
            due = max(self.scoreboard.last(self.slot), self.turn_due)
            blocked_for = time.monotonic() - due
            if blocked_for > limit and due != reported:
                reported = due
                frame = frames().get(main)
                stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
                self.report_blocked(blocked_for, stack)


def _close_watcher(watcher: Any) -> None:
    watcher.close()  # stops it too


def _cancel_timer(timer: Any) -> None:
    timer.cancel()


def _raise(exc: BaseException) -> None:
    """eventlet's listener error callback: what the hub throws at the loop's descriptor
    (it is never closed while watched, so nothing does)."""
    raise exc
