"""max_worker_memory: a worker that leaks is recycled past the limit, and no request fails.

The app's `/leak` keeps 1 MiB more per request (every page written, so resident) and sleeps
10 ms, so the load grows a worker by at most about 100 MiB a second: the master, which
measures its workers once a second, sees it pass the limit within a bounded overshoot. The
load (`support.load.LoadLoop`: keep-alive clients and clients opening a connection per
request) retries nothing, so a reset or a refused connection during a recycling fails the
test. Each kind is run, and the pss metric once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from support.load import LoadLoop, events, wait_event
from support.server import WsgidServer

APP = "lifecycle_app:app"
LIMIT_MIB = 96
RECYCLINGS = 2


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("sync", "rss"), ("gthread", "rss"), ("sync", "pss")],
)
def test_max_worker_memory_recycles_a_leaking_worker_without_a_failed_request(
    wsgid: Callable[..., WsgidServer], kind: str, metric: str
) -> None:
    server = wsgid(
        APP,
        "--worker-class", kind,
        "--max-worker-memory", str(LIMIT_MIB),
        "--max-worker-memory-metric", metric,
        workers=1,
    )  # fmt: skip
    (first,) = server.wait_workers(1)
    with LoadLoop(server.port, "/leak", keepalive=1, fresh=1) as load:
        recycled = wait_event(
            server.errlog, "worker.memory_limit", timeout=60, count=RECYCLINGS,
            check=server.check_running,
        )  # fmt: skip
        # The replacement serves: the load reaches a worker born after the last recycling.
        retired = {int(e.fields["worker"]) for e in recycled}
        load.wait_pids(lambda pids: bool(pids - retired), since=time.monotonic())
    stats = load.stats
    log = server.errlog()
    assert not stats.failures, stats.summary() + "\n" + log
    assert first in retired, log
    for event in recycled:
        assert event.level == "warning", event.text
        assert event.fields["metric"] == metric and event.fields["action"] == "recycling"
        # Over the limit in bytes; the event rounds to a tenth of a MiB.
        assert float(event.fields["memory_mib"]) >= LIMIT_MIB == int(event.fields["limit_mib"])
        # Retired gracefully: it finished its requests and exited 0, and it was not a crash.
        pid = event.fields["worker"]
        wait_event(server.errlog, "worker.exited", worker=pid, status="exit 0")
    assert len(stats.pids()) >= RECYCLINGS + 1, stats.pids()
    assert not events(log, "worker.respawn_delayed"), log
    assert not events(log, "worker.memory_limit_below_boot"), log


def test_max_worker_memory_below_a_booted_worker_is_reported_once_and_never_loops(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """A limit under what a worker uses at boot would recycle every worker at once, forever:
    the worker is kept and the mistake is logged once, as an error naming the boot size."""
    server = wsgid(APP, "--max-worker-memory", "1", workers=2)
    pids = set(server.wait_workers(2))
    reports = wait_event(
        server.errlog, "worker.memory_limit_below_boot", count=2, check=server.check_running
    )
    assert {int(e.fields["worker"]) for e in reports} == pids
    for event in reports:
        assert event.level == "error", event.text
        assert float(event.fields["boot_memory_mib"]) > 1, event.text
        assert "raise max_worker_memory" in event.fields["action"], event.text
    # Several more checks (one a second) while the load runs: nothing is recycled and the
    # report is not repeated. A window of time is what "never" can be observed over.
    with LoadLoop(server.port, keepalive=2, fresh=1) as load:
        window_end = time.monotonic() + 2.5
        while time.monotonic() < window_end:
            server.check_running()
            load.wait_served(1, since=time.monotonic())
    assert not load.stats.failures, load.stats.summary()
    assert set(load.stats.pids()) == pids, load.stats.pids()
    assert set(server.worker_pids()) == pids
    log = server.errlog()
    assert len(events(log, "worker.memory_limit_below_boot")) == 2, log
    assert not events(log, "worker.memory_limit"), log


def test_max_worker_memory_below_a_serving_worker_stops_recycling_after_three_early_ones(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """An app that fills a 128 MiB cache on its first request, under a 96 MiB limit: every
    replacement is over it at the first check (one a second) since it began serving too.
    After three workers recycled that early, the fourth is kept and the loop reported once,
    as an error; no more recycling."""
    server = wsgid(APP, "--max-worker-memory", str(LIMIT_MIB), workers=1)
    server.wait_workers(1)
    with LoadLoop(server.port, "/warm?mib=128", keepalive=1, fresh=0) as load:
        (report,) = wait_event(
            server.errlog, "worker.memory_limit_loop", timeout=60, check=server.check_running
        )
        kept = int(report.fields["worker"])
        window_end = time.monotonic() + 2.5  # more than two checks, one a second
        while time.monotonic() < window_end:
            server.check_running()
            load.wait_served(1, since=time.monotonic())
    assert not load.stats.failures, load.stats.summary()
    log = server.errlog()
    assert report.level == "error", report.text
    assert report.fields["recycled_early"] == "3"
    assert "raise max_worker_memory" in report.fields["action"], report.text
    assert len(events(log, "worker.memory_limit")) == 3, log
    assert len(events(log, "worker.memory_limit_loop")) == 1, log
    assert server.worker_pids() == [kept]
