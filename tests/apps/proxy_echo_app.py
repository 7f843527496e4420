"""Answers every request with JSON of what wsgid says about the client, for the proxy tests.

The body holds REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, SCRIPT_NAME, PATH_INFO,
REMOTE_USER, SERVER_NAME and SERVER_PORT (each null when absent), every `wsgid.*` key as a
string, and every `HTTP_*` key, so a test sees both what a proxy made of the client and
which headers reached the app.
The connection stays open (keep-alive tests send several requests on one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

NAMED = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.url_scheme",
    "SCRIPT_NAME",
    "PATH_INFO",
    "REMOTE_USER",
    "SERVER_NAME",
    "SERVER_PORT",
)


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    seen: dict[str, str | None] = {key: environ.get(key) for key in NAMED}
    for key, value in environ.items():
        if key.startswith("wsgid."):
            seen[key] = str(value)
        elif key.startswith("HTTP_"):
            seen[key] = value
    body = json.dumps(seen, sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
