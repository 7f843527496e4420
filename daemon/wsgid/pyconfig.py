"""gunicorn's Python configuration files, run as gunicorn runs them, and the hooks they define.

What this module owns:

- which config locations are Python (`is_python`): `python:MODULE`, or a path ending in `.py`
  (TOML stays the format of every other file);
- `execute`: running one, as gunicorn's `Application.get_config_from_filename` does: the file is
  executed as a fresh module named `__config__` with its `__file__`, registered in
  `sys.modules` while it runs; a `python:MODULE` is imported. Either way the working directory
  is first on the Python path, as gunicorn puts its `chdir` (the working directory by default)
  there before reading its config, so `from myproject import settings` works in the file;
- the hook reference, `python-config:LOCATION:NAME`: what a hook defined as a function in such a
  file becomes in the settings. A function cannot travel from the short-lived process that reads
  the settings (`wsgid.cli.load`) to the master, so the master runs the file again
  (`HookResolver`), once per set of hooks, before it forks: the workers share what it made, as
  under gunicorn, whose arbiter holds the one copy of its config module.

Reading the names of an executed file into settings is `wsgid.settings.pyfile`'s. This module
is imported by the master (through `wsgid.hooks`), so it must not import pydantic or
`wsgid.settings`.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable
from typing import Any

# gunicorn's prefix for a config given as a module name (`-c python:myproject.gunicorn`).
MODULE_PREFIX = "python:"
# gunicorn also accepts `-c file:PATH`: the same as PATH.
FILE_PREFIX = "file:"
# A hook set to a function of a Python config: `python-config:/srv/app/gunicorn.conf.py:post_fork`.
HOOK_REFERENCE_PREFIX = "python-config:"
# The module name gunicorn executes a config file under; functions defined in the file carry it
# as their `__module__`.
CONFIG_MODULE = "__config__"


class PythonConfigError(Exception):
    """A Python config could not be run; str() is the message for the user (no source named:
    the caller knows how the file was given)."""


def strip_file_prefix(location: str) -> str:
    return location[len(FILE_PREFIX) :] if location.startswith(FILE_PREFIX) else location


def is_python(location: str) -> bool:
    """Whether a config location is a Python config rather than a TOML file."""
    return location.startswith(MODULE_PREFIX) or strip_file_prefix(location).endswith(".py")


def hook_reference(location: str, name: str) -> str:
    """The setting value of hook `name`, a function in the Python config at `location`."""
    return f"{HOOK_REFERENCE_PREFIX}{location}:{name}"


def is_hook_reference(value: str) -> bool:
    return value.startswith(HOOK_REFERENCE_PREFIX)


def execute(location: str) -> types.ModuleType:
    """Run the Python config at `location` (a path or `python:MODULE`); return its module.

    Raises PythonConfigError with what went wrong and where (the file's line).
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if location.startswith(MODULE_PREFIX):
        return _import_config_module(location[len(MODULE_PREFIX) :])
    path = strip_file_prefix(location)
    try:
        with open(path, "rb") as fp:
            source = fp.read()
    except OSError as exc:
        raise PythonConfigError(f"cannot be read: {exc.strerror}") from None
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise PythonConfigError(f"is not valid Python: {exc.msg} (line {exc.lineno})") from None
    module = types.ModuleType(CONFIG_MODULE)
    module.__file__ = path
    previous = sys.modules.get(CONFIG_MODULE)
    sys.modules[CONFIG_MODULE] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        raise PythonConfigError(_failure(exc, path)) from None
    finally:
        # gunicorn leaves its module registered; wsgid restores whatever was there, so running
        # a config twice (reading the settings, then resolving hooks) cannot leak between them.
        if previous is None:
            sys.modules.pop(CONFIG_MODULE, None)
        else:
            sys.modules[CONFIG_MODULE] = previous
    return module


def _import_config_module(name: str) -> types.ModuleType:
    if not name:
        raise PythonConfigError(
            "names no module: write python:MODULE, like python:myproject.gunicorn"
        )
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise PythonConfigError(
                f"names module {name!r}, which cannot be found (looked in {os.getcwd()} and on "
                f"the Python path)"
            ) from None
        raise PythonConfigError(_failure(exc, None)) from None
    except (Exception, SystemExit) as exc:
        raise PythonConfigError(_failure(exc, None)) from None


def _failure(exc: BaseException, path: str | None) -> str:
    """`raised ValueError: ... (line 7)`: the exception, and the config's deepest line in it."""
    import traceback  # a failing config only: every start reads this module

    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if path is None or frame.filename == path:
            line = frame.lineno
    if isinstance(exc, SystemExit):
        what = f"called sys.exit({exc.code!r})"
    else:
        what = f"raised {type(exc).__name__}: {exc}"
    failure = f"{what} while being executed" + (f" (line {line})" if line else "")
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "gunicorn":
        # A gunicorn config renaming the Server header (`gunicorn.SERVER_SOFTWARE = ...`) or
        # subclassing its logger, run where gunicorn is gone.
        failure += (
            "; wsgid does not need gunicorn: remove the import and what uses it (wsgid answers"
            " with `Server: wsgid`, without a version, whatever gunicorn.SERVER_SOFTWARE says;"
            " for a gunicorn Logger subclass see logger_class in docs/gunicorn.md)"
        )
    return failure


class HookResolver:
    """Turns hook references into functions, running each config they name at most once."""

    def __init__(self) -> None:
        self._modules: dict[str, types.ModuleType] = {}

    def resolve(self, reference: str) -> Callable[..., Any]:
        """The function `python-config:LOCATION:NAME` names; PythonConfigError if none."""
        location, _, name = reference[len(HOOK_REFERENCE_PREFIX) :].rpartition(":")
        module = self._modules.get(location)
        if module is None:
            try:
                module = self._modules[location] = execute(location)
            except PythonConfigError as exc:
                raise PythonConfigError(f"the Python config {location} {exc}") from None
        func: Any = getattr(module, name, None)
        if not callable(func):
            # The file was changed since the settings were read (a reload runs it again).
            raise PythonConfigError(f"the Python config {location} no longer defines {name}")
        return func  # type: ignore[no-any-return]
