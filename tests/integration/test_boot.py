"""Boot: an app that is slow to import is served once loaded; a stop during boot is clean."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from support.server import WsgidServer

SLOW_APP = "slow_import_app:app"


def test_slow_importing_app_is_served_once_loaded(wsgid: Callable[..., WsgidServer]) -> None:
    started = time.monotonic()
    server = wsgid(SLOW_APP, workers=2, env={"SLOW_IMPORT_SECONDS": "1.5"})
    assert time.monotonic() - started >= 1.5  # the harness polled until the import was done
    r = server.get("/")
    assert r.status == 200
    assert r.body == b"slow import done\n"


def test_term_during_slow_app_import_kills_booting_workers_after_graceful_timeout(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(
        SLOW_APP,
        "--graceful-timeout",
        "2",
        workers=2,
        env={"SLOW_IMPORT_SECONDS": "60"},
        start=False,
    )
    # Both workers exist (and are stuck importing) before the stop.
    server.wait_workers(2, timeout=10)
    sent = time.monotonic()
    rc = server.stop(signal.SIGTERM, timeout=20)
    took = time.monotonic() - sent
    assert rc == 0, f"exit {rc}\n{server.errlog()}"
    # Bounded by graceful_timeout (2 s), not by the 60 s import; the margin is for slow CI.
    assert took < 10, f"stop took {took:.1f}s"
