"""The gthread worker: the epoll loop in the main thread, the app in a thread pool.

Owns: handing complete requests to a pool of at most `threads` threads and
taking the connections back when their response is done. The loop (shared
with the sync worker) keeps accepting, reading heads, parking keep-alive
connections and writing queued output while the threads run the app, so a
slow application call holds one thread, never the worker.

Ownership rule: while a request is in the pool its connection is `busy`:
left alone by the loop and its timeouts (and taken off epoll if it reports
anything meanwhile); only the pool thread touches it (reads more body,
sends). The thread hands it back
through a queue and a byte on the loop's wake-up pipe; all changes to the
loop's tables (epoll, the connection table) happen in the main thread.

Threads are started on demand, up to `threads`, so an idle worker costs one.
The loop alone counts the requests in the pool (no lock on the hot path), and
pool threads run as SCHED_BATCH so that waking one never preempts the loop
while it holds the GIL (`_yield_to_the_loop`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from typing import ClassVar

from mypy_extensions import mypyc_attr

from wsgid.http.parser import Request
from wsgid.workers.loop import Connection, ConnectionLoop


@mypyc_attr(allow_interpreted_subclasses=True)
class ThreadWorker(ConnectionLoop):
    kind: ClassVar[str] = "gthread"
    multithread: ClassVar[bool] = True
    accept_batch: ClassVar[int] = 16  # the pool absorbs bursts; the loop never blocks on the app

    def setup(self) -> None:
        super().setup()
        self.max_threads = max(1, int(self.settings.threads))
        self.jobs: queue.SimpleQueue[tuple[Connection, Request, bool] | None] = queue.SimpleQueue()
        self.done: deque[Connection] = deque()
        self.threads: list[threading.Thread] = []
        # Requests handed to the pool and not yet back (counted by the loop
        # alone, so no lock): with as many as threads, a new one would wait.
        self.in_flight = 0
        self.wake_pending = False  # a byte is on its way to the wake-up pipe

    def handle(self, conn: Connection, req: Request) -> None:
        keep_alive = self.keep_alive_for(req)
        # Still registered for EPOLLIN: the client usually waits for the
        # answer, so the loop unregisters it only if an event comes meanwhile
        # (saving two epoll calls per request).
        conn.busy = True
        threads = self.threads
        # Every thread may be busy: start one more if the cap allows. (A thread
        # that finished but is not yet seen back counts as busy, so a thread
        # may start a little early; never beyond the cap.)
        if self.in_flight >= len(threads) and len(threads) < self.max_threads:
            thread = threading.Thread(target=self._thread_main, name=f"wsgid-{len(threads)}")
            thread.daemon = True
            threads.append(thread)
            thread.start()
        self.in_flight += 1
        self.jobs.put((conn, req, keep_alive))

    def _thread_main(self) -> None:
        _yield_to_the_loop()
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            conn, req, keep_alive = job
            try:
                self.run_request(conn, req, keep_alive)
            except BaseException:
                self.log.exception("worker.thread_error")
                conn.closing = True
            self.done.append(conn)
            # One wake-up byte per loop turn, not per response: the loop
            # clears the flag before it takes the finished connections, so a
            # connection appended after that always comes with a new byte.
            if not self.wake_pending:
                self.wake_pending = True
                try:  # noqa: SIM105 - cheaper than contextlib.suppress, once per response
                    os.write(self.wake_w, b"\0")
                except BlockingIOError:
                    pass  # a full pipe: the loop is awake anyway

    def on_wake(self) -> None:
        self.wake_pending = False
        done = self.done
        while done:
            conn = done.popleft()
            self.in_flight -= 1
            conn.busy = False
            if conn.fd not in self.conns:
                continue
            self._after_output(conn)
            if conn.fd in self.conns and (conn.parser.ready or conn.error is not None):
                self._process(conn)

    def _close_all(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        super()._close_all()


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
