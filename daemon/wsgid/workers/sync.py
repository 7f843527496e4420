"""The sync worker (default): the application runs inline, one request at a time.

Owns: calling the app from the loop's thread. As in gunicorn's sync worker,
`timeout` bounds each request (a request that runs longer stops the
heartbeat and the master replaces the worker); unlike it, connections are
driven by the epoll loop, so keep-alive works and idle or slow clients never
hold the application.
"""

from __future__ import annotations

from typing import ClassVar

from mypy_extensions import mypyc_attr

from wsgid.http.parser import Request
from wsgid.workers.loop import Connection, ConnectionLoop


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncWorker(ConnectionLoop):
    kind: ClassVar[str] = "sync"
    multithread: ClassVar[bool] = False

    def handle(self, conn: Connection, req: Request) -> None:
        self.run_request(conn, req, self.keep_alive_for(req))
