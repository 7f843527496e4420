"""The sync worker (default): the application runs inline, one request at a time.

Owns: calling the app from the loop's thread. As in gunicorn's sync worker,
`timeout` bounds each request (a request that runs longer stops the
heartbeat and the master replaces the worker); unlike it, connections are
driven by the epoll loop, so keep-alive works and idle or slow clients never
hold the application. The heartbeat is stamped when each request ends, so
the bound is per request, not per loop turn, and a wait for a slow client
gives up before the bound (`ConnectionLoop.wait_deadline`).
"""

from __future__ import annotations

from typing import ClassVar

from mypy_extensions import mypyc_attr

from wsgid.http.request import Request
from wsgid.workers.connection import Connection
from wsgid.workers.loop import ConnectionLoop


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncWorker(ConnectionLoop):
    kind: ClassVar[str] = "sync"
    multithread: ClassVar[bool] = False

    def handle(self, conn: Connection, req: Request) -> None:
        self.run_request(conn, req, self.allows_keep_alive())
        # Stamped now, not when epoll next returns (up to a second later), so
        # that a request shorter than `timeout` never looks hung, nor does the
        # next request of the same turn inherit this one's time.
        self.scoreboard.beat(self.slot)
