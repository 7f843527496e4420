"""Fixtures of the wire-level conformance suite (tests/conformance only).

Owns: the module-scoped `kind` and `server` fixtures: one wsgid per worker kind per test module
(the suite must stay fast). Every worker kind in `wsgid.workers.KINDS` is a parameter, so a
kind added there joins the suite without a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance_server import WORKER_KINDS, ConformanceServer, running


@pytest.fixture(scope="module", params=WORKER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(kind: str, session_tmp: Path) -> Iterator[ConformanceServer]:
    """wsgid with default settings, one per worker kind and test module."""
    with running(session_tmp, kind) as srv:
        yield srv
