"""Worker kinds: processes forked by the master that serve connections.

`base.py` holds what every kind shares (signals, heartbeat, app loading,
graceful stop), `loop.py` the epoll connection loop that sync and gthread
share, and one module per kind.

This module owns the registry of kinds, `KINDS`: the one list of the
`worker_class` values wsgid has. The setting's validation (and so `wsgid
check`), its `--help` text, docs/configuration.md and the JSON Schema of the
file read it, and `resolve()` maps a `worker_class` setting to its class. It
names each kind's class by its import path and imports neither worker code
nor pydantic, so the settings model reads it without loading either.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgid.workers.base import Worker


@dataclass(frozen=True)
class Kind:
    """A built-in worker kind: where its class is, and what it does (for `--help` and docs)."""

    path: str  # MODULE:CLASS
    summary: str
    # Monkey-patches its worker processes and runs each request in a greenlet: one request
    # at a time per connection, and no preload_app (the master is never patched).
    cooperative: bool = False
    # Said once at start (a warning) when the kind is chosen: why, and what to use instead.
    deprecated: str = ""


KINDS: Mapping[str, Kind] = {
    "sync": Kind(
        "wsgid.workers.sync:SyncWorker",
        "runs the application one request at a time per worker",
    ),
    "gthread": Kind(
        "wsgid.workers.gthread:ThreadWorker",
        "runs it in a pool of `threads` threads",
    ),
    "gevent": Kind(
        "wsgid.workers.greenlets:GeventWorker",
        "runs each request in a greenlet of gevent's, the worker monkey-patched first",
        cooperative=True,
    ),
    "eventlet": Kind(
        "wsgid.workers.greenlets:EventletWorker",
        "as gevent, on eventlet's hub (eventlet is deprecated upstream: prefer gevent)",
        cooperative=True,
        deprecated=(
            "eventlet is deprecated by its maintainers (bug fixes only, retirement planned)"
            " and gunicorn 26 removed its eventlet worker; wsgid serves it for existing apps,"
            " but move to -k gevent (docs/worker-kinds.md says what differs)"
        ),
    ),
    "tornado": Kind(
        "wsgid.workers.tornado_kind:TornadoWorker",
        "serves a tornado Application on tornado's IOLoop, a WSGI app in a pool of `threads`",
    ),
}

# Any other worker_class is the import path of a Worker subclass: package.module.Class.
DOTTED_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
DOTTED_PATH_TEXT = "the dotted path of a Worker subclass (package.module.Class)"
_DOTTED_PATH = re.compile(DOTTED_PATH)
# What worker_class accepts, in words: the one text of every message and doc that says it.
ACCEPTED = ", ".join(KINDS) + ", or " + DOTTED_PATH_TEXT


def known(name: str) -> bool:
    """Whether `name` is a worker_class wsgid accepts: a kind, or a dotted path."""
    return name in KINDS or _DOTTED_PATH.fullmatch(name) is not None


class UnknownWorkerClass(Exception):
    """`worker_class` names neither a built-in kind nor an importable class."""


def resolve(name: str) -> type[Worker]:
    """The worker class for `name`: a kind (`sync`) or a `package.module.Class` path."""
    if not known(name):
        raise UnknownWorkerClass(f"worker_class {name!r} is not accepted; accepted: {ACCEPTED}")
    kind = KINDS.get(name)
    if kind is not None:
        module_name, _, attr = kind.path.partition(":")
    else:
        module_name, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownWorkerClass(f"worker_class {name!r} cannot be imported: {exc}") from None
    from wsgid.workers.base import Worker

    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise UnknownWorkerClass(f"worker_class {name!r} is not a wsgid Worker subclass")
    return cls
