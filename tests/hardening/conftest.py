"""Fixtures of the hardening suite: attacks and host failures, reproduced for real.

Owns: the `kind` fixture. Every regression test here runs on every worker kind in
`wsgid.workers.KINDS`, so a kind added there is attacked too without a change here;
`kind_args(kind)` gives the command-line flags that select it.
"""

from __future__ import annotations

import pytest

from wsgid.workers import KINDS

WORKER_KINDS = sorted(KINDS)


def kind_args(kind: str) -> list[str]:
    """The flags that run `kind` (gthread with a small pool, as deployments use it)."""
    args = ["--worker-class", kind]
    if kind == "gthread":
        args += ["--threads", "4"]
    return args


@pytest.fixture(params=WORKER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
