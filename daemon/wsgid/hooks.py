"""Server hooks: user functions called at points of the server's life.

Owns: importing the `"module:function"` strings of the `[hooks]` settings (and
finding the functions of a gunicorn Python config, `python-config:FILE:NAME`, by
running the file in the master: see `wsgid.pyconfig`), calling them with
gunicorn's arguments, and making sure a hook that raises is logged with its name
and never takes the master (or a worker) down.

| hook | called in | arguments |
| --- | --- | --- |
| on_starting | master, before binding | (server) |
| on_reload | master, on HUP (the new configuration's), before the new workers start | (server) |
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
| worker_exit | worker, as it leaves (not when killed or aborted) | (server, worker) |
| nworkers_changed | master, at start (old None), on changes | (server, new_value, old_value) |
| on_exit | master, before it exits | (server) |
| ssl_context | master, building the TLS context | (settings, default_factory) → SSLContext |

`server` is the `Master`; in the master `worker` is its `WorkerProcess`
record (pid, age), in a worker the `Worker` object itself, seen through
`wsgid.hook_objects` (which also gives `req` gunicorn's attributes).

A hook whose function cannot be called with its arguments is refused when the hooks are
resolved (at start, on HUP, by `wsgid check`), as gunicorn refuses it when it reads the
configuration, rather than failing with a TypeError at each call. As in gunicorn,
post_request may take just (worker, req) or (worker, req, environ).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wsgid.hook_objects import WORKER_ARGUMENT, HookObjects
from wsgid.loader import AppLoadError, import_object
from wsgid.pyconfig import HookResolver, PythonConfigError, is_hook_reference

if TYPE_CHECKING:
    from wsgid.runtime import RuntimeSettings

# The arguments each hook is called with (the table above), whose count is the arity gunicorn
# requires of it when it reads the configuration.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "on_starting": ("server",),
    "on_reload": ("server",),
    "when_ready": ("server",),
    "pre_fork": ("server", "worker"),
    "post_fork": ("server", "worker"),
    "post_worker_init": ("worker",),
    "worker_int": ("worker",),
    "worker_abort": ("worker",),
    "pre_exec": ("server",),
    "pre_request": ("worker", "req"),
    "post_request": ("worker", "req", "environ", "resp"),
    "child_exit": ("server", "worker"),
    "worker_exit": ("server", "worker"),
    "nworkers_changed": ("server", "new_value", "old_value"),
    "on_exit": ("server",),
    "ssl_context": ("settings", "default_factory"),
}


class HookError(Exception):
    """A hook's import string does not name a callable, or one that takes its arguments."""


class Hooks:
    """The configured hooks; `call(name, ...)` runs one if it is set."""

    def __init__(
        self, settings: RuntimeSettings, log: Any, sources: Mapping[str, str] | None = None
    ) -> None:
        self._log = log
        self._funcs: dict[str, Callable[..., Any]] = {}
        # One per set of hooks: a Python config is run once for all the hooks it defines, and
        # again on each reload (HUP), which builds a new set, as gunicorn re-reads it.
        configs = HookResolver()
        hooks = dict(settings.hook_imports)
        objects = HookObjects(keep_requests="pre_request" in hooks and "post_request" in hooks)
        for name, spec in hooks.items():
            source = (sources or {}).get(name, "default")
            origin = f" (from {source})" if source != "default" else ""
            try:
                func = configs.resolve(spec) if is_hook_reference(spec) else import_object(spec)
            except AppLoadError as exc:
                raise HookError(f"hook {name}{origin}: {exc}".replace("app ", "", 1)) from None
            except PythonConfigError as exc:
                raise HookError(f"hook {name}{origin}: {exc}") from None
            if not callable(func):
                raise HookError(
                    f"hook {name}{origin}: {spec!r}: {type(func).__name__} object is not"
                    f" callable; a hook is a function taking ({', '.join(ARGUMENTS[name])})"
                )
            func = _fitted(name, origin, func)
            if name in WORKER_ARGUMENT:
                func = objects.adapt(name, func)  # gunicorn's worker and request
            self._funcs[name] = func

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
            # The hooks are made in the master, with its log; a worker's hook failed in the
            # worker, whose pid the event must carry.
            self._log.exception("hook.failed", hook=name, pid=os.getpid())


def _fitted(name: str, origin: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` if it can be called with the hook's arguments, else HookError, as gunicorn
    refuses it when reading the configuration (rather than a TypeError at each call).

    Defaults and *args count as they do in a call (`inspect.signature(...).bind`). As in
    gunicorn, post_request may also take only (worker, req, environ) or (worker, req): it is
    then called with those.
    """
    # Here, not at the top: only a configured hook needs `inspect` (2 ms of a start).
    import inspect

    arguments = ARGUMENTS[name]
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return func  # no signature to read (some builtins): the call will tell
    accepted = (4, 3, 2) if name == "post_request" else (len(arguments),)
    for arity in accepted:
        try:
            signature.bind(*arguments[:arity])
        except TypeError:
            continue
        return func if arity == len(arguments) else _first_arguments(func, arity)
    shown = getattr(func, "__qualname__", None) or repr(func)
    also = " (or 2 or 3: worker, req[, environ])" if name == "post_request" else ""
    raise HookError(
        f"hook {name}{origin}: {shown}{signature} cannot take the hook's arguments"
        f" ({', '.join(arguments)}): it must have an arity of {len(arguments)}{also}"
    )


def _first_arguments(func: Callable[..., Any], count: int) -> Callable[..., Any]:
    """`func` called with the first `count` of the arguments it is given."""

    def call(*args: Any) -> Any:
        return func(*args[:count])

    return call
