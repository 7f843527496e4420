"""Server hooks: user functions called at points of the server's life.

Owns: importing the `"module:function"` strings of the `[hooks]` settings (and
finding the functions of a gunicorn Python config, `python-config:FILE:NAME`, by
running the file in the master: see `wsgid.pyconfig`), calling them with
gunicorn's arguments, and making sure a hook that raises is logged with its name
and never takes the master (or a worker) down.

| hook | called in | arguments |
| --- | --- | --- |
| on_starting | master, before binding | (server) |
| on_reload | master, on HUP before the new workers start | (server) |
| when_ready | master, once the first generation has booted | (server) |
| pre_fork | master, before each fork | (server, worker) |
| post_fork | worker, just after the fork | (server, worker) |
| post_worker_init | worker, after the app is loaded | (worker) |
| worker_int | worker, on INT/QUIT | (worker) |
| worker_abort | worker, on the timeout abort | (worker) |
| pre_exec | master, before exec'ing the new master (USR2) | (server) |
| pre_request | worker, before calling the app | (worker, req) |
| post_request | worker, after the response | (worker, req, environ, resp) |
| child_exit | master, after reaping a worker | (server, worker) |
| worker_exit | master, after reaping a worker (after child_exit) | (server, worker) |
| nworkers_changed | master, when the worker count changes | (server, new_value, old_value) |
| on_exit | master, before it exits | (server) |
| ssl_context | master, building the TLS context | (settings, default_factory) → SSLContext |

`server` is the `Master`; in the master `worker` is its `WorkerProcess`
record (pid, age), in a worker the `Worker` object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wsgid.loader import AppLoadError, import_app
from wsgid.pyconfig import HookResolver, PythonConfigError, is_hook_reference

if TYPE_CHECKING:
    from wsgid.runtime import RuntimeSettings


class HookError(Exception):
    """A hook's import string does not name a callable."""


class Hooks:
    """The configured hooks; `call(name, ...)` runs one if it is set."""

    def __init__(self, settings: RuntimeSettings, log: Any) -> None:
        self._log = log
        self._funcs: dict[str, Callable[..., Any]] = {}
        # One per set of hooks: a Python config is run once for all the hooks it defines, and
        # again on each reload (HUP), which builds a new set, as gunicorn re-reads it.
        configs = HookResolver()
        for name, spec in settings.hook_imports:
            try:
                if is_hook_reference(spec):
                    self._funcs[name] = configs.resolve(spec)
                else:
                    self._funcs[name] = import_app(spec)
            except AppLoadError as exc:
                raise HookError(f"hook {name}: {exc}".replace("app ", "", 1)) from None
            except PythonConfigError as exc:
                raise HookError(f"hook {name}: {exc}") from None

    def has(self, name: str) -> bool:
        return name in self._funcs

    def function(self, name: str) -> Callable[..., Any] | None:
        """The hook's function, for a hook whose result counts (ssl_context); None if unset."""
        return self._funcs.get(name)

    def call(self, name: str, *args: Any) -> None:
        func = self._funcs.get(name)
        if func is None:
            return
        try:
            func(*args)
        except Exception:
            self._log.exception("hook.failed", hook=name)
