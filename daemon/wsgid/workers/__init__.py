"""Worker kinds: processes forked by the master that serve connections.

`base.py` holds what every kind shares (signals, heartbeat, app loading,
graceful stop), `loop.py` the epoll connection loop that sync and gthread
share, and one module per kind.

This module owns the registry of kinds, `KINDS`: the one list of the
`worker_class` values wsgid has. The setting's validation (and so `wsgid
check`), its `--help` text, docs/configuration.md and the JSON Schema of the
file read it, and `resolve()` maps a `worker_class` setting to its class. It
also knows gunicorn's names of its worker classes (`GUNICORN_CLASSES`, read as
the kind of the same name) and the ASGI worker classes no kind can stand for. It
names each kind's class by its import path and imports neither worker code
nor pydantic, so the settings model reads it without loading either.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from wsgid.workers.base import Worker


class Kind(NamedTuple):
    """A built-in worker kind: where its class is, and what it does (for `--help` and docs).

    A named tuple, not a dataclass: this module is imported by every start, twice (the
    settings child, then the master), and a frozen dataclass costs 0.4 ms to make."""

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


# gunicorn's own worker classes, as gunicorn users' configurations name them: the class's
# path, or its entry point (`egg:gunicorn#gevent`, or `#gevent`, which gunicorn's load_class
# reads too). Each is read as the wsgid kind of the same name, which serves the same
# applications; importing gunicorn's class would run gunicorn's worker, which wsgid cannot.
GUNICORN_CLASSES: Mapping[str, str] = {
    "gunicorn.workers.sync.SyncWorker": "sync",
    "gunicorn.workers.gthread.ThreadWorker": "gthread",
    "gunicorn.workers.ggevent.GeventWorker": "gevent",
    "gunicorn.workers.ggevent.GeventPyWSGIWorker": "gevent",
    "gunicorn.workers.geventlet.EventletWorker": "eventlet",
    "gunicorn.workers.gtornado.TornadoWorker": "tornado",
    **{f"{prefix}{kind}": kind for kind in KINDS for prefix in ("egg:gunicorn#", "#")},
    # gunicorn's gevent_pywsgi worker (also named gevent_wsgi, with no dot: gunicorn's
    # load_class reads the bare name) is its gevent worker with gevent's pywsgi parsing HTTP:
    # it serves the same applications as the gevent kind.
    **{
        f"{prefix}{name}": "gevent"
        for name in ("gevent_wsgi", "gevent_pywsgi")
        for prefix in ("", "egg:gunicorn#", "#")
    },
}

# Worker classes that run ASGI applications, which no wsgid kind can serve: gunicorn's own
# (gunicorn 25) and uvicorn's, in the uvicorn package and in its successor, uvicorn-worker.
_ASGI_CLASSES = re.compile(
    r"(?:egg:gunicorn#|#)?asgi|gunicorn\.workers\.gasgi\..+|(?:uvicorn|uvicorn_worker)\..+"
)


def gunicorn_kind(name: str) -> str | None:
    """The wsgid kind gunicorn's worker class `name` is (`gunicorn.workers.ggevent.GeventWorker`
    is gevent), or None."""
    return GUNICORN_CLASSES.get(name)


def asgi(name: str) -> bool:
    """Whether `name` is a worker class of ASGI applications (`uvicorn.workers.UvicornWorker`)."""
    return _ASGI_CLASSES.fullmatch(name) is not None


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
