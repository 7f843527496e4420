"""Plain WSGI applications served by every server in the benchmark (`bench/run`).

Each one is as small as a WSGI app can be, so the numbers measure the server, not the app:

- `hello`: a 13-byte ``text/plain`` body;
- `echo`: returns the request body (used with a 16 KiB POST);
- `big`: a 1 MiB body in one chunk;
- `sleep`: sleeps 10 ms, then answers like `hello` (an I/O-bound app).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

HELLO_BODY = b"Hello, World!"
BIG_SIZE = 1024 * 1024
BIG_BODY = bytes(range(256)) * (BIG_SIZE // 256)
SLEEP_SECONDS = 0.010

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))]
_BIG_HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG_SIZE))]


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer ``Hello, World!``."""
    start_response("200 OK", list(_HELLO_HEADERS))
    return [HELLO_BODY]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the request body, read in full through ``wsgi.input``."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer with a 1 MiB body."""
    start_response("200 OK", list(_BIG_HEADERS))
    return [BIG_BODY]


def sleep(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Sleep 10 ms (like a call to a database), then answer like `hello`."""
    time.sleep(SLEEP_SECONDS)
    start_response("200 OK", list(_HELLO_HEADERS))
    return [HELLO_BODY]
