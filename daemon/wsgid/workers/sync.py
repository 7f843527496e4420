"""The sync worker (default): the application runs inline, one request at a time.

Owns: calling the app from the loop's thread. As in gunicorn's sync worker,
`timeout` bounds each request (a request that runs longer stops the
heartbeat and the master replaces the worker); unlike it, connections are
driven by the epoll loop, so keep-alive works and idle or slow clients never
hold the application.
"""

from __future__ import annotations

from wsgid.http.parser import Request
from wsgid.workers.loop import Connection, ConnectionLoop


class SyncWorker(ConnectionLoop):
    kind = "sync"
    multithread = False

    def handle(self, conn: Connection, req: Request) -> None:
        self.run_request(conn, req, self.keep_alive_for(req))
