"""What a request over TLS looks like to the app, for tests/integration/test_tls.py.

- `POST` (any path): the request body, echoed as it was read;
- `GET /file`: the file named by `TESTAPP_TLS_FILE` through `wsgi.file_wrapper`, opened so
  that reading it in Python upper-cases its bytes (as in file_wrapper_app): a body that comes
  back upper-cased was read and sent by the worker, one with the bytes on disk went by
  sendfile(2);
- any other `GET`: JSON of the environ's TLS keys (`wsgi.url_scheme`, `HTTPS`, `SSL_*`, each
  null when absent), `REMOTE_PORT`, `PATH_INFO`, `QUERY_STRING` and the worker's `pid`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from typing import Any

KEYS = (
    "wsgi.url_scheme",
    "HTTPS",
    "SSL_PROTOCOL",
    "SSL_CIPHER",
    "SSL_CLIENT_VERIFY",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_I_DN",
    "SSL_CLIENT_CERT",
    "REMOTE_PORT",
    "PATH_INFO",
    "QUERY_STRING",
)


class Shouting(io.FileIO):
    """A real file (sendfile can send it) whose read() upper-cases what it returns."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        return data.upper() if data else b""


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        body: bytes = environ["wsgi.input"].read()
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if environ["PATH_INFO"] == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](
            Shouting(os.environ["TESTAPP_TLS_FILE"], "rb")
        )
        return wrapper
    seen: dict[str, object] = {key: environ.get(key) for key in KEYS}
    seen["pid"] = os.getpid()
    data = json.dumps(seen, sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
