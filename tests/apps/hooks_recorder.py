"""Server hooks that record each call, for tests/integration/test_hooks.py.

Every hook appends one JSON object per call to the file named by TESTAPP_HOOK_LOG:
`{"hook", "pid", "ppid", "t" (monotonic), "args" (type names), "facts"}`. `facts` holds what
the hook saw of its arguments (a worker's pid and age, the request path, the response status,
the worker counts...), so the test can check both the arguments and the moment of the call.
A fact that cannot be read is recorded as `{"error": ...}` rather than raising, so a missing
attribute shows up as a test failure that says which one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from wsgid.workers.base import Worker


def _record(hook: str, args: tuple[Any, ...], facts: Callable[[], dict[str, Any]]) -> None:
    path = os.environ.get("TESTAPP_HOOK_LOG")
    if not path:
        return
    try:
        seen = facts()
    except Exception as exc:
        seen = {"error": f"{type(exc).__name__}: {exc}"}
    entry = {
        "hook": hook,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "t": time.monotonic(),
        "args": [type(a).__name__ for a in args],
        "facts": seen,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry, default=repr) + "\n").encode())
    finally:
        os.close(fd)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _in_worker(worker: Any) -> dict[str, Any]:
    return {"is_worker": isinstance(worker, Worker), "app_loaded": worker.app is not None}


def _record_of(worker: Any) -> dict[str, Any]:
    return {"worker_pid": worker.pid, "age": worker.age}


def on_starting(server: Any) -> None:
    _record(
        "on_starting",
        (server,),
        # gunicorn's names too: cfg (its settings' names), num_workers
        lambda: {
            "listeners": len(server.listeners),
            "cfg_workers": server.cfg.workers,
            "num_workers": server.num_workers,
        },
    )


def on_reload(server: Any) -> None:
    _record("on_reload", (server,), lambda: {"generation": server.generation})


def when_ready(server: Any) -> None:
    _record(
        "when_ready",
        (server,),
        lambda: {"booted": sorted(w.booted for w in server.workers.values())},
    )


def pre_fork(server: Any, worker: Any) -> None:
    _record("pre_fork", (server, worker), lambda: _record_of(worker))


def post_fork(server: Any, worker: Any) -> None:
    _record(
        "post_fork",
        (server, worker),
        # gunicorn's worker names too: age, ppid, cfg
        lambda: {
            **_in_worker(worker),
            "age": worker.age,
            "ppid_attr": worker.ppid,
            "cfg_timeout": worker.cfg.timeout,
        },
    )


def post_worker_init(worker: Any) -> None:
    _record("post_worker_init", (worker,), lambda: _in_worker(worker))


def worker_int(worker: Any) -> None:
    _record("worker_int", (worker,), lambda: _in_worker(worker))


def worker_abort(worker: Any) -> None:
    _record(
        "worker_abort",
        (worker,),
        lambda: {
            **_in_worker(worker),
            "path": worker.current[0].path.decode() if worker.current else None,
        },
    )


def pre_exec(server: Any) -> None:
    _record("pre_exec", (server,), lambda: {"listeners": len(server.listeners)})


def pre_request(worker: Any, req: Any) -> None:
    _record(
        "pre_request",
        (worker, req),
        lambda: {**_in_worker(worker), "method": req.method, "path": _text(req.path)},
    )


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    _record(
        "post_request",
        (worker, req, environ, resp),
        lambda: {
            **_in_worker(worker),
            "method": req.method,
            "path": _text(req.path),
            "path_info": environ["PATH_INFO"],
            "status": resp.status_code,
        },
    )


def child_exit(server: Any, worker: Any) -> None:
    _record(
        "child_exit",
        (server, worker),
        lambda: {**_record_of(worker), "running": os.path.exists(f"/proc/{worker.pid}")},
    )


def worker_exit(server: Any, worker: Any) -> None:
    _record(
        "worker_exit",
        (server, worker),
        lambda: {**_in_worker(worker), "worker_pid": worker.pid, "server_pid": server.pid},
    )


def nworkers_changed(server: Any, new_value: Any, old_value: Any) -> None:
    _record(
        "nworkers_changed",
        (server, new_value, old_value),
        lambda: {"new": new_value, "old": old_value},
    )


def on_exit(server: Any) -> None:
    _record("on_exit", (server,), lambda: {"listeners": len(server.listeners)})
