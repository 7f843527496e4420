"""Monkey-patches the standard library with gevent at import, as many apps' wsgi.py do.

The patching comes before any other import but `os`. `TESTAPP_GEVENT_THREAD=0` patches
everything but threading (`monkey.patch_all(thread=False)`).

- `/`: JSON {pid, remote_port, patched}: `patched` says whether `socket.socket` is gevent's
  now (the patching took);
- `/relay?port=N`: sends `ping` on a new connection to 127.0.0.1:N, made with the patched
  socket module, and answers what came back (the app's own cooperative I/O);
- `/echo` (POST): the request body, read through `wsgi.input`;
- `/big?mb=N`: N MiB (the bytes 0..255 repeated), streamed in 64 KiB chunks.
"""

import os

from gevent import monkey

monkey.patch_all(thread=os.environ.get("TESTAPP_GEVENT_THREAD") != "0")

# E402: the patching above must come first, as it does in the apps this one stands for.
import json  # noqa: E402
import socket  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

CHUNK = bytes(range(256)) * 256  # 64 KiB


def _relay(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"ping\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


def _big(mb: int) -> Iterator[bytes]:
    for _ in range(mb * 16):
        yield CHUNK


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/relay":
        body = _relay(int(query["port"][0]))
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/big":
        mb = int(query.get("mb", ["1"])[0])
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(mb << 20))],
        )
        return _big(mb)
    else:
        body = json.dumps(
            {
                "pid": os.getpid(),
                "remote_port": environ.get("REMOTE_PORT"),
                "patched": socket.socket.__module__.startswith("gevent"),
            }
        ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
