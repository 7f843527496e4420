"""Fixtures of the hardening suite: attacks and host failures, reproduced for real.

Owns: the `kind` fixture. Every regression test here runs on every worker kind in
`wsgid.workers.KINDS` (support/kinds.py), so a kind added there is attacked too without a
change here; `support.kinds.kind_args(kind)` gives the command-line flags that select it.
"""

from __future__ import annotations

import pytest

from support.kinds import WORKER_KINDS


@pytest.fixture(params=WORKER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
