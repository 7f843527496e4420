"""Modules a library imports only for calls wsgid never makes: imported on first use instead.

Owns: `deferring(*names)`, the context manager around such a library's import, and
`without_package_init(package, submodule)`, a submodule without the rest of its package.

structlog's bound logger imports `asyncio` for its async logging methods (and with it `ssl`,
`subprocess` and `concurrent.futures`: about 11 ms, a tenth of a server's start on one CPU).
While the library is imported, each named module that is not imported yet is a stand-in in
`sys.modules`; the library keeps that stand-in as its global, and the stand-in leaves
`sys.modules` when the block ends. The first attribute anything asks
of it imports the real module (whose own `sys.modules` entry the app's `import` then finds)
and answers from it, so a call that does use the module behaves as before, only later.

A stand-in in `sys.modules` never outlives the block, so the app and its libraries (gevent's
patching among them) see only real modules. Modules already imported are left as they are.
(The stand-in packages below are the exception: they stay, and become real on first use.)

Some packages import far more in their `__init__` than wsgid uses of them. pydantic-core's
imports its `core_schema` module (the schema's typed dicts, with `typing_extensions`,
`decimal` and `fractions`: about 9 ms of the settings child's 30 on one CPU), which
validating a ready schema never reads; structlog's imports all of structlog (its console
renderer, stdlib integration and global configuration: 5 ms of a start), where wsgid uses its
bound logger only. `without_package_init` imports such a submodule under a
stand-in package that has only its `__path__`; the stand-in stays in `sys.modules`, and the
first attribute asked of it (by an app that uses the package) runs the package's `__init__`
as an `import` would (it finds the submodules already imported) and answers from the real
package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
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
        real = importlib.import_module(name)
        # A submodule imported under the stand-in is an attribute of it only: an import binds
        # a submodule to its package when it loads it, and it will not load it again.
        for key, value in vars(self).items():
            if isinstance(value, types.ModuleType) and not hasattr(real, key):
                setattr(real, key, value)
        return getattr(real, attribute)


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


def without_package_init(package: str, submodule: str) -> types.ModuleType:
    """`package.submodule`, imported without running `package`'s `__init__` when `package` is
    not imported yet: `package` is then a stand-in whose first use imports it."""
    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations is not None:
            stand_in = _OnFirstUse(package)
            stand_in.__path__ = list(spec.submodule_search_locations)
            sys.modules[package] = stand_in
    return importlib.import_module(f"{package}.{submodule}")
