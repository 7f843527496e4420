"""The sync worker (default): the application runs inline, one request at a time.

Owns: calling the app from the loop's thread. As in gunicorn's sync worker,
`timeout` bounds each request (a request that runs longer stops the
heartbeat and the master replaces the worker); unlike it, connections are
driven by the epoll loop, so keep-alive works and idle or slow clients never
hold the application. The heartbeat is stamped when each request ends, so
the bound is per request, not per loop turn, and a wait for a slow client
gives up before the bound (`ConnectionLoop.wait_deadline`). It holds the
responses of a fast app for the end of the loop's turn (loop.py, "Held
responses"): the policy, sending them before an app call that may be slow,
is here.
"""

from __future__ import annotations

from typing import ClassVar

from mypy_extensions import mypyc_attr

from wsgid.http.request import Request
from wsgid.workers.connection import Connection
from wsgid.workers.loop import (
    FAST_STREAK,
    HOLD_MAX,
    HOLD_WINDOW,
    HOLD_WINDOW_US,
    ConnectionLoop,
    monotonic,
)


@mypyc_attr(allow_interpreted_subclasses=True)
class SyncWorker(ConnectionLoop):
    kind: ClassVar[str] = "sync"
    multithread: ClassVar[bool] = False
    holds_responses: ClassVar[bool] = True

    def setup(self) -> None:
        super().setup()
        # Fast app calls in a row (loop.py, "Held responses"); a new worker takes its app for
        # fast until a call says otherwise.
        self.fast_calls = FAST_STREAK

    def handle(self, conn: Connection, req: Request) -> None:
        if self.unsent_since and (
            self.fast_calls < FAST_STREAK
            or len(self.held) - self.unsent_from >= HOLD_MAX
            or monotonic() - self.unsent_since > HOLD_WINDOW
        ):
            self.release_held()  # this app call may take long: they should not wait for it
        self.run_request(conn, req, self.allows_keep_alive())
        self.fast_calls = self.fast_calls + 1 if self.last_call_us < HOLD_WINDOW_US else 0
        # Stamped now, not when epoll next returns (up to a second later), so
        # that a request shorter than `timeout` never looks hung, nor does the
        # next request of the same turn inherit this one's time.
        self.scoreboard.beat(self.slot, monotonic())
