"""Access log: off by default; `--access-logfile -` writes one line per request on stdout; a
filter on the `gunicorn.access` logger (gunicorn's health-check recipe) holds for it."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

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


@pytest.mark.parametrize("kind", WORKER_KINDS)
@pytest.mark.parametrize("how", ["hook", "logconfig_dict"])
def test_a_filter_on_gunicorn_access_keeps_health_checks_out_of_the_access_log(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str, how: str
) -> None:
    """gunicorn users add a logging.Filter to `gunicorn.access`, from a hook or their
    logconfig_dict; a line it refuses is written nowhere."""
    log = workdir.logs / "access.log"
    if how == "hook":
        extra = ["--on-starting", "access_filter_hooks:on_starting"]
    else:
        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"nohealth": {"()": "access_filter_hooks.NoHealth"}},
            "loggers": {"gunicorn.access": {"filters": ["nohealth"]}},
        }
        extra = ["--log-config-dict", json.dumps(config)]
    server = wsgid(SLEEP_APP, *kind_args(kind), "--access-logfile", str(log), *extra, workers=1)
    assert server.get("/health").status == 200
    assert server.get("/other").status == 200
    poll(lambda: "/other" in _text(log), timeout=10, what="the /other line")
    assert "/health" not in _text(log)
    assert server.stop(signal.SIGTERM) == 0


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
