"""Access log: off by default; `--access-logfile -` writes one line per request on stdout."""

from __future__ import annotations

import signal
from collections.abc import Callable

from support.server import WsgidServer

SLEEP_APP = "sleep_app:app"


def test_access_log_off_by_default(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(SLEEP_APP, workers=1)
    for i in range(3):
        assert server.get(f"/pid?default-off={i}").status == 200
    assert server.stop(signal.SIGTERM) == 0
    assert "default-off" not in server.outlog() + server.errlog()


def test_access_log_dash_writes_one_line_per_request_to_stdout(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(SLEEP_APP, "--access-logfile", "-", workers=1)
    for i in range(5):
        assert server.get(f"/pid?logged-request=r{i}-end").status == 200
    assert server.get("/no-such?logged-request=r404-end").status == 200  # sleep_app answers all
    assert server.stop(signal.SIGTERM) == 0
    lines = [line for line in server.outlog().splitlines() if "logged-request" in line]
    assert len(lines) == 6, server.outlog()
    for i in range(5):
        assert sum(f"logged-request=r{i}-end" in line for line in lines) == 1
    assert all("200" in line and "GET" in line for line in lines), lines
