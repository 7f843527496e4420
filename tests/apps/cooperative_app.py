"""An app for the cooperative kinds' tests (tests/integration/test_cooperative_workers.py).

Imported in a gevent or eventlet worker. At import it records how the process looked then,
so a test can tell whether the worker's library patched the standard library before the app
was imported; and it subclasses `ssl.SSLContext` at import, as urllib3, pyOpenSSL and
ddtrace do (a subclass made before gevent patches `ssl` recurses without end when used:
gunicorn#1559, #2515).

- `/import`: JSON: the library loaded, which modules it had patched when the app was
  imported (their functions and classes are its own), the module of the app's
  `threading.Lock` and `threading.local`, and of the lock `concurrent.futures.thread` holds.
- `/sleep?s=N`: `time.sleep(N)` (patched: it waits in the hub), then `slept`.
- `/spin?s=N`: keeps the CPU busy for N seconds (blocks the hub), then `spun`.
- `/ssl`: makes a context of the subclass and sets its options and minimum version.
- `/environ`: JSON of `wsgi.multithread` and `wsgi.multiprocess`.

With TESTAPP_BACKGROUND_THREAD=1 it starts a `threading.Thread` at import that ticks for ever,
as APM and metrics agents do (a greenlet once threading is patched).
"""

from __future__ import annotations

import concurrent.futures.thread
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

if __import__("os").environ.get("TESTAPP_BACKGROUND_THREAD") == "1":

    def _tick() -> None:
        while True:
            time.sleep(0.1)

    threading.Thread(target=_tick, daemon=True, name="agent").start()

# The worker's library: each kind loads its own, never the other.
LIBRARY = "eventlet" if "eventlet" in sys.modules else "gevent"
PATCHED_AT_IMPORT = {
    name: item.__module__.startswith(LIBRARY)
    for name, item in (
        ("socket", socket.socket),
        ("ssl", ssl.SSLContext),
        ("threading", threading.Lock),
        ("time", time.sleep),
    )
}
# gunicorn#3482: concurrent.futures.thread, imported by the master before any patch, kept an
# unpatched module-level lock that hung boto3 in gevent workers. Whose lock it holds here.
FUTURES_LOCK_TYPE = type(concurrent.futures.thread._global_shutdown_lock).__module__
LOCK_TYPE = type(threading.Lock()).__module__
LOCAL_TYPE = threading.local.__module__


class AppContext(ssl.SSLContext):
    """What urllib3 and ddtrace do at import: a subclass of the context class."""


def _seconds(environ: dict[str, Any]) -> float:
    return float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["0"])[0])


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/import":
        body = json.dumps(
            {
                "library": LIBRARY,
                "patched": PATCHED_AT_IMPORT,
                "lock": LOCK_TYPE,
                "local": LOCAL_TYPE,
                "futures_lock": FUTURES_LOCK_TYPE,
            }
        ).encode()
    elif path == "/sleep":
        time.sleep(_seconds(environ))
        body = b"slept"
    elif path == "/spin":
        _spin(_seconds(environ))
        body = b"spun"
    elif path == "/ssl":
        context = AppContext(ssl.PROTOCOL_TLS_CLIENT)
        context.options |= ssl.OP_NO_COMPRESSION
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        body = b"ssl ok"
    elif path == "/environ":
        body = json.dumps(
            {key: environ[key] for key in ("wsgi.multithread", "wsgi.multiprocess")}
        ).encode()
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
