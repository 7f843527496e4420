"""Fixtures shared by the in-process unit tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test (log timestamps), restored afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def no_wsgid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings variables of the caller's shell (WSGID_*, PORT, WEB_CONCURRENCY,
    GUNICORN_CMD_ARGS) are unset."""
    for name in list(os.environ):
        if name.startswith("WSGID_") or name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"):
            monkeypatch.delenv(name)
