"""The sync worker (default): the application runs inline, one request at a time.

Owns: calling the app from the loop's thread. As in gunicorn's sync worker,
`timeout` bounds each request (a request that runs longer stops the
heartbeat and the master replaces the worker); unlike it, connections are
driven by the epoll loop, so keep-alive works and idle or slow clients never
hold the application.
"""

from __future__ import annotations

import time

from wsgid.http import exchange
from wsgid.http.parser import Request
from wsgid.workers.loop import Connection, ConnectionLoop


class SyncWorker(ConnectionLoop):
    kind = "sync"
    multithread = False

    def handle(self, conn: Connection, req: Request) -> None:
        access = self.access
        started = time.perf_counter() if access is not None else 0.0
        keep_alive = self.keep_alive_for(req)
        self.current = (req.method, req.path.decode("latin-1"), conn.peer, time.monotonic())
        if self.hooks.has("pre_request"):
            self.hooks.call("pre_request", self, req)
        try:
            outcome = exchange.run(self.app, conn.base, req, conn, self.log, keep_alive)
        except OSError:
            # The client went away while the response was being written.
            self._close(conn)
            return
        finally:
            self.current = None
        self.finish_request(conn, req, outcome.keep_alive)
        if self.hooks.has("post_request"):
            self.hooks.call("post_request", self, req, outcome.environ, outcome.response)
        if access is not None:
            headers = dict(req.headers)
            access.log(
                remote=conn.peer,
                method=req.method,
                target=req.target,
                version=req.version,
                status=outcome.response.status_code,
                size=outcome.response.bytes_sent,
                referer=headers.get(b"Referer", b"").decode("latin-1"),
                user_agent=headers.get(b"User-Agent", b"").decode("latin-1"),
                duration_us=int((time.perf_counter() - started) * 1e6),
            )
