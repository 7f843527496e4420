"""The gthread worker: the epoll loop in the main thread, the app in a thread pool.

Owns: handing complete requests to a pool of at most `threads` threads and
taking the connections back when their response is done, and the
per-request `timeout` of the pool. The loop (shared with the sync worker)
keeps accepting, reading heads, parking keep-alive connections and writing
queued output while the threads run the app, so a slow application call
holds one thread, never the worker.

Ownership rule: while a request is in the pool its connection is `busy`:
left alone by the loop and its timeouts (and taken off epoll if it reports
anything meanwhile); only the pool thread touches it (reads more body,
sends; the response's last bytes it leaves in the queue for the loop, loop.py
"Held responses"). The thread hands it back through a queue and a byte on
the loop's wake-up pipe; all changes to the loop's tables (epoll, the
connection table) happen in the main thread.

Threads are started on demand, up to `threads`, so an idle worker costs one.
A thread that cannot be started (a pids limit) leaves the requests to the
threads there are; with none at all, the loop's thread runs the request, as
the sync worker does.
With siblings (`workers` > 1), a worker whose threads are all taken stops
watching the listeners until one is free again (`may_accept`): its loop still
waits in epoll_wait, and EPOLLEXCLUSIVE would keep waking it for new
connections, which would wait for a thread here while a sibling idled.
The loop alone counts the requests in the pool (no lock on the hot path), and
pool threads run as SCHED_BATCH so that waking one never preempts the loop
while it holds the GIL (`_yield_to_the_loop`).

Request timeout. The loop keeps stamping the heartbeat whatever the pool
does, so the master cannot see a stuck thread; the loop's sweep does. A
request running in a thread for longer than `timeout` without its client taking
any of its response (a download or an event stream the client keeps reading is
not stuck, as under gunicorn's gthread) is reported once
(`worker.request_timeout`, with the thread's stack) and its client is taken
from the thread without closing a descriptor the thread may still use: the
loop duplicates the client's socket for itself and points the thread's
descriptor number at a dead socket (dup2, atomic), so whatever the thread
sends from then on fails (EPIPE) and never reaches the client. The loop then
reads `Connection.responded`, which the thread sets before each send: False
means nothing of the response left before the swap, so the client gets a
503; True, and the connection is cut. The thread's descriptor is closed when
the thread hands the connection back (an HTTPS one is always cut: its TLS session
belongs to the thread). When every thread is stuck, the worker
cannot serve any more: it answers the requests still queued with 503 and
exits, and the master starts a replacement.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sys
import threading
import time
import traceback
from collections import deque
from typing import ClassVar, Final

from mypy_extensions import mypyc_attr

from wsgid import loader
from wsgid import scoreboard as scoreboard_mod
from wsgid.http.errors import ProtocolError
from wsgid.http.parser import RequestParser
from wsgid.http.request import Request
from wsgid.http.response import Response
from wsgid.runtime import RuntimeSettings
from wsgid.workers import unpatched
from wsgid.workers.connection import Connection
from wsgid.workers.loop import LINGER_SECONDS, ConnectionLoop

Job = tuple[Connection, Request, bool]
THREAD_LOG_INTERVAL: Final = (
    5.0  # at most one worker.thread_start_failed line per this many seconds
)


class PoolThread:
    """What one pool thread runs, and since when; read by the loop's sweep."""

    __slots__ = ("ident", "index", "job", "name", "progressed", "reported", "seen_sends", "started")

    def __init__(self, index: int) -> None:
        self.index = index  # also its record on the scoreboard
        self.name = f"wsgid-{index}"
        self.ident = 0
        self.job: Job | None = None  # set after `started`, cleared when the request ends
        self.started = 0.0
        self.reported = 0.0  # the `started` of the request reported as timed out
        # When the pool check last saw its client take bytes (`Connection.sends` moved): the
        # limit counts from then, so a download or an event stream is not a stuck request.
        self.progressed = 0.0
        self.seen_sends = 0

    def limit_start(self, job: Job, now: float) -> float:
        """Since when its request's limit counts: its start, or the last time its client was
        seen taking bytes (`Connection.sends` moved since the last look)."""
        sends = job[0].sends
        if sends != self.seen_sends:
            self.seen_sends, self.progressed = sends, now
        return max(self.started, self.progressed)


@mypyc_attr(allow_interpreted_subclasses=True)
class ThreadWorker(ConnectionLoop):
    kind: ClassVar[str] = "gthread"
    multithread: ClassVar[bool] = True
    accept_batch: ClassVar[int] = 16  # the pool absorbs bursts; the loop never blocks on the app
    # A thread leaves its response's last bytes to the loop, which sends them with the others
    # of its turn (loop.py, "Held responses"): the loop calls no app, so nothing slow comes
    # between (but in `handle`'s fallback, which sends them first).
    holds_responses: ClassVar[bool] = True

    @classmethod
    def check_app(cls, settings: RuntimeSettings) -> None:
        # The pool's threads would start through the replaced function (unpatched.py).
        if unpatched.threads_replaced():
            raise loader.AppLoadError(
                f"app {settings.app!r} monkey-patched threading (as gevent's "
                "monkey.patch_all() does): the gthread worker's threads would be greenlets "
                "that never run; serve it with the sync worker (-k sync --threads 1, more "
                "workers with -w), with -k gevent (which patches before the app is imported), "
                "or patch without threading (monkey.patch_all(thread=False))"
            )

    def setup(self) -> None:
        super().setup()
        self.max_threads = self.settings.threads
        self.jobs: queue.SimpleQueue[Job | None] = unpatched.SIMPLE_QUEUE()
        self.done: deque[Connection] = deque()
        self.threads: list[threading.Thread] = []
        self.pool: list[PoolThread] = []
        self.by_ident: dict[int, PoolThread] = {}
        # Requests handed to the pool and not yet back (counted by the loop
        # alone, so no lock): with as many as threads, a new one would wait.
        self.in_flight = 0
        # Whether a saturated pool stops watching the listeners (`may_accept`): only with
        # siblings. The loop of a worker whose threads are all taken still waits in
        # epoll_wait, and EPOLLEXCLUSIVE wakes a waiting worker for a new connection, the
        # first registered one first: the busy worker took the connections and queued them
        # behind its threads while a sibling idled (2 workers, 16 clients, 0.1 s app: 170
        # requests against 25, p50 0.40 s against 0.20 s). Alone, no other worker could take
        # the connection: stopping would cost two epoll_ctl calls per saturation (each
        # turn of a loaded single worker, as in the benchmark's runs) and gain nothing.
        self.sheds = self.settings.workers > 1
        self.wake_pending = False  # a byte is on its way to the wake-up pipe
        self.thread_log_after = 0.0  # worker.thread_start_failed is logged again from then on
        self.dead_fd = -1  # a socket whose peer is gone, for taken connections
        # Held by `_take` while it takes a client and chooses its answer: a thread whose
        # request it took waits for the choice (`as_answered`). Only timed-out requests.
        self.taking = threading.Lock()

    def request_limit_of(self, settings: RuntimeSettings) -> float:
        """`request_timeout`, else `timeout`: the loop thread keeps stamping the heartbeat while
        a pool thread is stuck, so the worker itself must bound its requests."""
        return settings.request_timeout or settings.timeout

    def handle(self, conn: Connection, req: Request) -> None:
        worker_keeps = self.allows_keep_alive()
        # Still registered for EPOLLIN: the client usually waits for the
        # answer, so the loop unregisters it only if an event comes meanwhile
        # (saving two epoll calls per request).
        conn.busy = True
        conn.responded = False
        threads = self.threads
        # Every thread may be busy: start one more if the cap allows. (A thread
        # that finished but is not yet seen back counts as busy, so a thread
        # may start a little early; never beyond the cap.)
        if (
            self.in_flight >= len(threads)
            and len(threads) < self.max_threads
            and not self._start_thread()
            and not threads
        ):
            # Not one thread to run it: the loop's thread runs it, as the sync
            # worker would (the master's heartbeat timeout bounds it then).
            conn.busy = False
            self.release_held()  # held responses never wait for an app call
            self.run_request(conn, req, worker_keeps)
            self.scoreboard.beat(self.slot)
            return
        self.in_flight += 1
        if self.in_flight >= self.max_threads and self.sheds:
            # Every thread taken: leave new connections to a sibling (`may_accept`).
            self.admission.watch(False)
        self.jobs.put((conn, req, worker_keeps))

    def may_accept(self) -> bool:
        """Not while every thread is taken (with siblings to take the connections): watching
        the listeners then would make the kernel wake this worker for new connections, which
        would wait for a thread here while a sibling may have one free."""
        return self.in_flight < self.max_threads or not self.sheds

    def _start_thread(self) -> bool:
        """One more pool thread; False if the system has none to give (logged).

        Under a pids limit (a cgroup's pids.max, TasksMax=) or without memory,
        starting a thread fails: the requests then wait for the threads there
        are (or run in the loop's thread if there is none), and a later request
        tries again.
        """
        pool_thread = PoolThread(len(self.threads))
        thread = threading.Thread(
            target=self._thread_main, args=(pool_thread,), name=pool_thread.name
        )
        thread.daemon = True
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread"
            now = time.monotonic()
            if now >= self.thread_log_after:
                self.thread_log_after = now + THREAD_LOG_INTERVAL
                self.log.error(
                    "worker.thread_start_failed", error=str(exc), threads=len(self.threads)
                )
            return False
        self.threads.append(thread)
        self.pool.append(pool_thread)
        return True

    def _thread_main(self, me: PoolThread) -> None:
        _yield_to_the_loop()
        me.ident = threading.get_ident()
        self.by_ident[me.ident] = me
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            conn, req, worker_keeps = job
            me.started = time.monotonic()
            me.job = job
            try:
                self.run_request(conn, req, worker_keeps, me.index)
            except BaseException:
                self.log.exception("worker.thread_error")
                conn.closing = True
            me.job = None
            self.done.append(conn)
            # One wake-up byte per loop turn, not per response: the loop
            # clears the flag before it takes the finished connections, so a
            # connection appended after that always comes with a new byte.
            if not self.wake_pending:
                self.wake_pending = True
                try:  # noqa: SIM105 - cheaper than contextlib.suppress, once per response
                    unpatched.OS_WRITE(self.wake_w, b"\0")
                except BlockingIOError:
                    pass  # a full pipe: the loop is awake anyway

    def wait_deadline(self) -> float:
        """A pool thread's waits for its client end before its request's `timeout`, counted
        from the last time the client took bytes (as `_check_pool` counts it)."""
        me = self.by_ident.get(threading.get_ident())
        if me is None:
            return float("inf")
        job = me.job
        if job is None:
            return me.started + self.request_limit - self.wait_margin
        # Its own wait may have seen the client take bytes (`Connection._wait`).
        return me.limit_start(job, time.monotonic()) + self.request_limit - self.wait_margin

    def on_wake(self) -> None:
        self.wake_pending = False
        done = self.done
        if not done:
            return
        while done:
            self.in_flight -= 1
            self.handed_back(done.popleft())
        if not self.admission.watching:
            self.listen_again()  # a thread is free again (unless a pipelined request took it)

    def _sweep(self, now: float) -> None:
        super()._sweep(now)
        if self.request_limit and self.alive:
            self._check_pool(now)

    def _check_pool(self, now: float) -> None:
        """Report and answer requests in the pool past their limit; exit if all threads are
        stuck."""
        stuck = 0
        for me in self.pool:
            job = me.job  # before `started`: the thread sets them in the other order
            started = me.started
            # An Upgrade request (a WebSocket taken over) lives as long as its client.
            if job is None or job[1].upgrade:
                continue
            if now - me.limit_start(job, now) <= self.request_limit:
                continue
            stuck += 1
            if me.reported != started:
                me.reported = started
                self._timed_out(me, job, now - started)
        if stuck >= self.max_threads:
            self._give_up(stuck)

    def _timed_out(self, me: PoolThread, job: Job, elapsed: float) -> None:
        conn, req, _ = job
        frame = sys._current_frames().get(me.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        answer = self._take(conn, req, me.started)
        self.report_timeout(conn, req, elapsed, answer, stack, self.request_limit, thread=me.name)

    def as_answered(self, conn: Connection, resp: Response) -> None:
        with self.taking:  # `_take` marks the request timed out before choosing its answer
            super().as_answered(conn, resp)

    def _take(self, conn: Connection, req: Request, started: float) -> str:
        """Take `conn`'s client from the thread that runs its request; what it got."""
        with self.taking:
            return self._take_locked(conn, req, started)

    def _take_locked(self, conn: Connection, req: Request, started: float) -> str:
        # epoll knows the descriptor with its socket: unregister before repointing it.
        self._watch(conn, 0)
        conn.closing = True  # when the thread hands it back, it is closed
        conn.timed_out = True
        try:
            if self.dead_fd < 0:
                self.dead_fd = _dead_socket()
            client = os.dup(conn.fd)
        except OSError:
            # No descriptor to spare: cut the connection; the thread's sends fail.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            return "cut"
        os.dup2(self.dead_fd, conn.fd)
        self.taken.add(conn.fd)
        if conn.responded or conn.tls:
            # Part of the response may have reached the client: a 503 after
            # it would be read as the next response. Cut the connection. (Over
            # TLS, the session's state is the thread's: a 503 cannot be sent.)
            with contextlib.suppress(OSError):
                os.close(client)
            return "cut"
        sock = unpatched.SOCKET(fileno=client)
        sock.setblocking(False)
        taken = Connection(sock, RequestParser(self.limits), conn.base, self.io_timeout)
        self.conns[taken.fd] = taken
        taken.closing = True
        taken.send(self.timed_out_answer(conn, req, started, head=req.method == "HEAD"))
        self._after_output(taken)
        return "503"

    def _give_up(self, stuck: int) -> None:
        """Every thread is stuck: answer what waits for one with 503, and exit."""
        self.log.error(
            "worker.threads_stuck", threads=stuck, timeout=self.request_limit, action="exiting"
        )
        self.scoreboard.set_exit_reason(self.slot, scoreboard_mod.EXIT_THREADS_STUCK)
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                continue
            conn = job[0]
            conn.busy = False
            self.in_flight -= 1
            self._reject(conn, ProtocolError(503, "every thread of the worker is stuck"))
        # Only the lingering closes of those answers are waited for: the
        # stuck requests would never end.
        self.stop_grace = LINGER_SECONDS
        self.alive = False

    def _close_all(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for conn in list(self.conns.values()):
            if conn.busy:
                # A thread may still write to its descriptor: closing it could
                # hand the number to another file. Cut it; the exit closes it.
                self.conns.pop(conn.fd, None)
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
        super()._close_all()


def _dead_socket() -> int:
    """A socket whose peer is closed: sends fail with EPIPE, reads see EOF."""
    mine, peer = unpatched.SOCKETPAIR()
    peer.close()
    mine.setblocking(False)
    return mine.detach()


def _yield_to_the_loop() -> None:
    """Make the calling pool thread SCHED_BATCH: woken, it does not preempt the loop.

    Handing a request to the pool wakes a thread while the loop still holds
    the GIL; preempting the loop then only buys the thread a wait for the GIL
    and two context switches. SCHED_BATCH (same priority and CPU share,
    unprivileged) leaves the loop running until it blocks in epoll and lets go
    of the GIL. Measured on hello with 4 threads: 0.94 -> 0.06 context
    switches and about 15 % more requests per second.
    """
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None:
        return  # not Linux
    # A sandbox may refuse it: threads still work, only slower.
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, batch, os.sched_param(0))
