"""The worker kinds the suites run over, and the flags that select each.

Every kind in `wsgid.workers.KINDS` is listed, so a kind added there is tested without a
change here.
"""

from __future__ import annotations

from wsgid.workers import KINDS

WORKER_KINDS = sorted(KINDS)


def kind_args(kind: str) -> list[str]:
    """The flags that run `kind` (gthread, and tornado's pool for a WSGI app, with a small
    pool, as deployments use it)."""
    args = ["--worker-class", kind]
    if kind in ("gthread", "tornado"):
        args += ["--threads", "4"]
    return args
