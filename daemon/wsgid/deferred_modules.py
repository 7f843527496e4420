"""Modules a library imports only for calls wsgid never makes: imported on first use instead.

Owns: `deferring(*names)`, the context manager around such a library's import.

structlog imports `asyncio` for its async logging methods (and with it `ssl`, `subprocess`
and `concurrent.futures`: about 11 ms, a tenth of a server's start on one CPU) and `uuid` for
its deprecated thread-local module. While the library is imported, each named module that is
not imported yet is a stand-in in `sys.modules`; the library keeps that stand-in as its global,
and the stand-in leaves `sys.modules` when the block ends. The first attribute anything asks
of it imports the real module (whose own `sys.modules` entry the app's `import` then finds)
and answers from it, so a call that does use the module behaves as before, only later.

A stand-in in `sys.modules` never outlives the block, so the app and its libraries (gevent's
patching among them) see only real modules. Modules already imported are left as they are.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any


class _OnFirstUse(types.ModuleType):
    """Stands in for a module: the first attribute asked of it imports the real one."""

    def __getattr__(self, attribute: str) -> Any:
        name = self.__name__
        # Asked while the block still runs (a submodule's import wants `__path__`, say):
        # the stand-in leaves first, or the import would find it again.
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)


@contextlib.contextmanager
def deferring(*names: str) -> Iterator[None]:
    """Within the block, `import NAME` of each of `names` not imported yet gives a stand-in."""
    stand_ins = {}
    for name in names:
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = _OnFirstUse(name)
    try:
        yield
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
