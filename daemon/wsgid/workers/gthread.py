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
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque

from wsgid.http.parser import Request
from wsgid.workers.loop import Connection, ConnectionLoop


class ThreadWorker(ConnectionLoop):
    kind = "gthread"
    multithread = True
    accept_batch = 16  # the pool absorbs bursts; the loop never blocks on the app

    def setup(self) -> None:
        super().setup()
        self.max_threads = max(1, int(self.settings.threads))
        self.jobs: queue.SimpleQueue[tuple[Connection, Request, bool] | None] = queue.SimpleQueue()
        self.done: deque[Connection] = deque()
        self.threads: list[threading.Thread] = []
        self.idle_threads = 0
        self.idle_lock = threading.Lock()
        self.wake_pending = False  # a byte is on its way to the wake-up pipe

    def handle(self, conn: Connection, req: Request) -> None:
        keep_alive = self.keep_alive_for(req)
        # Still registered for EPOLLIN: the client usually waits for the
        # answer, so the loop unregisters it only if an event comes meanwhile
        # (saving two epoll calls per request).
        conn.busy = True
        with self.idle_lock:
            # idle_threads counts idle threads minus queued jobs: at or below
            # zero, a new job would wait, so start a thread if the cap allows.
            start = self.idle_threads <= 0 and len(self.threads) < self.max_threads
            if not start:
                self.idle_threads -= 1
        if start:
            thread = threading.Thread(target=self._thread_main, name=f"wsgid-{len(self.threads)}")
            thread.daemon = True
            self.threads.append(thread)
            thread.start()
        self.jobs.put((conn, req, keep_alive))

    def _thread_main(self) -> None:
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
                with contextlib.suppress(BlockingIOError):  # full pipe: the loop is awake anyway
                    os.write(self.wake_w, b"\0")
            with self.idle_lock:
                self.idle_threads += 1

    def on_wake(self) -> None:
        self.wake_pending = False
        done = self.done
        while done:
            conn = done.popleft()
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
