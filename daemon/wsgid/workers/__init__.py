"""Worker kinds: processes forked by the master that serve connections.

`base.py` holds what every kind shares (signals, heartbeat, app loading,
graceful stop), `loop.py` the epoll connection loop that sync and gthread
share, and one module per kind. `resolve()` maps a `worker_class` setting to
its class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgid.workers.base import Worker

KINDS = {
    "sync": "wsgid.workers.sync:SyncWorker",
    "gthread": "wsgid.workers.gthread:ThreadWorker",
}


class UnknownWorkerClass(Exception):
    """`worker_class` names neither a built-in kind nor an importable class."""


def resolve(name: str) -> type[Worker]:
    """The worker class for `name`: a kind (`sync`) or a `package.module.Class` path."""
    target = KINDS.get(name)
    if target is None:
        if "." not in name and ":" not in name:
            raise UnknownWorkerClass(
                f"worker_class {name!r} is not a worker kind wsgid has; available: "
                + ", ".join(sorted(KINDS))
                + ", or a dotted path to a Worker subclass"
            )
        target = name
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownWorkerClass(f"worker_class {name!r} cannot be imported: {exc}") from None
    from wsgid.workers.base import Worker

    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise UnknownWorkerClass(f"worker_class {name!r} is not a wsgid Worker subclass")
    return cls
