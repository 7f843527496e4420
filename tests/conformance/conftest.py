"""Fixtures of the wire-level conformance suite (tests/conformance only).

Owns: the module-scoped `kind`, `build` and `server` fixtures: one wsgid per worker kind and
build per test module (the suite must stay fast). Every worker kind in `wsgid.workers.KINDS`
(support/kinds.py) is a parameter, so a kind added there joins the suite without a change here;
so is each build (support/builds.py): the compiled one where this install has it, and always
pure Python. test_wire_cases_tls.py replaces `server` with an HTTPS one over the same `kind`
and `build`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.conformance_server import ConformanceServer, running
from support.builds import BUILDS
from support.kinds import WORKER_KINDS


@pytest.fixture(scope="module", params=WORKER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=BUILDS)
def build(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(
    kind: str, build: str, session_tmp: Path, request: pytest.FixtureRequest
) -> Iterator[ConformanceServer]:
    """wsgid with default settings, one per worker kind, build and test module."""
    package = request.getfixturevalue("pure_wsgid") if build == "pure" else None
    with running(session_tmp, kind, package=package) as srv:
        yield srv
