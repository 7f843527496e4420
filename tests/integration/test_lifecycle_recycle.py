"""Recycling (`max_requests` + jitter) under keep-alive load resets no connection.

A worker that reaches its request budget answers its last request with `Connection: close`,
finishes, and is replaced. The load (`support.load.LoadLoop`) retries nothing: an ECONNRESET
or a connection closed without a response is a failure; a `Connection: close` response
followed by a new connection is the clean way and is counted. A recycled worker is not a
crash: its replacement is not delayed by the crash backoff.
"""

from __future__ import annotations

from collections.abc import Callable

from support.client import poll
from support.load import LoadLoop, events
from support.server import WsgidServer

APP = "lifecycle_app:app"
RECYCLINGS = 6


def test_max_requests_recycles_workers_under_keepalive_load_without_a_reset(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "--max-requests", "50", "--max-requests-jitter", "10", workers=2)
    first = set(server.wait_workers(2))
    keepalive_clients, fresh_clients = 4, 1
    with LoadLoop(server.port, keepalive=keepalive_clients, fresh=fresh_clients) as load:

        def recycled() -> bool:
            server.check_running()
            return len(events(server.errlog(), "worker.max_requests")) >= RECYCLINGS

        poll(recycled, timeout=60, what=f"{RECYCLINGS} recyclings")
    stats = load.stats
    assert not stats.failures, stats.summary() + "\n" + server.errlog()
    served_by = stats.pids()
    assert len(served_by) >= len(first) + RECYCLINGS - 1, served_by
    # Every worker stopped at its budget (50 to 60 requests), plus at most two more per
    # client: one already on its way over the connection the client held (answered with
    # Connection: close rather than reset), and one over a new connection the worker accepted
    # in the wake-up it was already in (the kernel woke it alone for it: EPOLLEXCLUSIVE), when
    # that client had reconnected at once. Each client has one request in flight at a time.
    bound = 60 + 2 * (keepalive_clients + fresh_clients)
    for pid, n in served_by.items():
        assert n <= bound, f"worker {pid} served {n} requests with max_requests=50, jitter=10"
    assert stats.closes >= 1, "the last answer of a recycled worker says Connection: close"
    # A recycled worker exits 0 on purpose: it is replaced at once, not delayed like a crash.
    log = server.errlog()
    assert not events(log, "worker.respawn_delayed"), log
