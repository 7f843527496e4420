"""The app of the master-lifecycle tests (signals, reload, upgrade, timeouts, recycling).

Routes (every answer is JSON `{"pid", "version", "path"}` unless said otherwise):
- `/pid` and anything else: answer at once; the pid tells which worker served the request.
- `/sleep?s=2&tag=T[&log=M]`: sleep `s` seconds first; with TESTAPP_MARKERS set, the file
  `$TESTAPP_MARKERS/started-T` (holding the worker pid) is created when the request reaches
  the app. With `log=M`, `lifecycle-log M pid=<pid>` is written to `wsgi.errors` after the
  sleep.
- `/stuck?tag=T`: never returns: `stuck_view` sleeps forever, so the master's timeout has to
  abort the worker and its stack dump must name `stuck_view` (marker as for `/sleep`).
- `/log?msg=M`: writes `lifecycle-log M pid=<pid>` to `wsgi.errors` (the error log) first.
- `/leak?mib=N&s=S`: keeps N MiB (default 1) more for good, every page written (resident),
  then sleeps S seconds (default 0.01): a leaking app at a bounded pace, for max_worker_memory.
- `/warm?mib=N`: the first time in a worker, keeps N MiB (default 1) for good, every page
  written: a cache the first request fills, for max_worker_memory's loop guard.
- `/tail?tag=T`: a generator whose only chunk completes its Content-Length, then waits (up
  to 20 s) for `$TESTAPP_MARKERS/release-T` before it ends: a body must reach the client
  before the iterable is done with.
- `/status?code=N`: answers with status N (the metrics tests count responses by code).
- `/drip?s=2&tag=T`: starts a chunked 200 with `write(b"first\n")`, then sleeps `s` seconds
  before the rest (marker as for `/sleep`): a response a timeout cuts, once it began.

`make_app(version)` builds the same app answering another `version`, so a test can write a
module of its own (`app = lifecycle_app.make_app("v2")`) and see which code a worker runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

_leaked: list[bytes] = []  # what /leak and /warm keep: never freed while the worker lives


def _mark_started(query: dict[str, list[str]]) -> None:
    markers = os.environ.get("TESTAPP_MARKERS")
    tag = query.get("tag", [None])[0]
    if markers and tag:
        with open(os.path.join(markers, f"started-{tag}"), "w") as f:
            f.write(str(os.getpid()))


def _log(environ: dict[str, Any], msg: str) -> None:
    errors = environ["wsgi.errors"]
    errors.write(f"lifecycle-log {msg} pid={os.getpid()}\n")
    errors.flush()


def stuck_view(environ: dict[str, Any]) -> None:
    """Hang like a view waiting on a dead database: only SIGABRT/SIGKILL get it out."""
    _mark_started(parse_qs(environ.get("QUERY_STRING", "")))
    while True:
        time.sleep(3600)


def _tail(tag: str) -> Iterable[bytes]:
    yield b"tail\n"
    release = os.path.join(os.environ.get("TESTAPP_MARKERS", "."), f"release-{tag}")
    deadline = time.monotonic() + 20
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)


def make_app(version: str) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/stuck":
            stuck_view(environ)
        elif path == "/tail":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
            return _tail(query["tag"][0])
        elif path == "/drip":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"first\n")
            _mark_started(query)
            time.sleep(float(query.get("s", ["1"])[0]))
            return [b"rest\n"]
        elif path == "/sleep":
            _mark_started(query)
            time.sleep(float(query.get("s", ["1"])[0]))
            if "log" in query:
                _log(environ, query["log"][0])
        elif path == "/log":
            _log(environ, query.get("msg", ["-"])[0])
        elif path == "/leak":
            _leaked.append(b"\xa5" * (int(query.get("mib", ["1"])[0]) << 20))
            time.sleep(float(query.get("s", ["0.01"])[0]))
        elif path == "/warm" and not _leaked:
            _leaked.append(b"\xa5" * (int(query.get("mib", ["1"])[0]) << 20))
        facts: dict[str, Any] = {"pid": os.getpid(), "version": version, "path": path}
        if path == "/env":
            facts["env"] = os.environ.get(query["name"][0])
        body = json.dumps(facts).encode()
        status = f"{query['code'][0]} Status" if path == "/status" else "200 OK"
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


app = make_app("1")
