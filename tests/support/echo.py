"""Raw-socket exchanges with `proxy_echo_app` (tests/apps): request bytes in, what the app saw out.

Owns: the few steps the wire-level tests of forwarded headers, PROXY headers and request ids
share: writing a request head, reading the app's JSON answer, and checking that wsgid itself
refused a request (its own error response, then the connection closed).
"""

from __future__ import annotations

import json
from typing import cast

from support.client import RawConnection, RawResult

ECHO_APP = "proxy_echo_app:app"

# The app's answer: REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, SCRIPT_NAME, PATH_INFO,
# REMOTE_USER (null when absent), every wsgid.* key as text and every HTTP_* key.
Seen = dict[str, str | None]


def head(path: str = "/", *fields: str, method: str = "GET") -> bytes:
    """An HTTP/1.1 request head with `Host: t` and `fields` ("Name: value"), as latin-1."""
    lines = [f"{method} {path} HTTP/1.1", "Host: t", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def seen(conn: RawConnection, data: bytes) -> Seen:
    """Send `data` (one request) on `conn`; what the app saw, from its 200 answer."""
    reply = conn.request(data)
    return answer(reply)


def answer(reply: RawResult) -> Seen:
    """What the app saw, from its reply (which must be its 200)."""
    assert reply.status == 200, (reply.status, reply.body[:200])
    return cast(Seen, json.loads(reply.body))


def http_fields(environ: Seen) -> Seen:
    """The HTTP_* keys of what the app saw."""
    return {key: value for key, value in environ.items() if key.startswith("HTTP_")}


def refused(conn: RawConnection, data: bytes, status: int) -> RawResult:
    """Send `data` (b"": nothing) and read wsgid's own `status` answer, after which wsgid
    must close the connection: nothing more arrives, whatever else `data` held."""
    if data:
        conn.send(data)
    reply = conn.read_response()
    assert reply.status == status, (reply.status, reply.headers.items(), reply.body[:200])
    # wsgid's error body ("400 Bad Request\n"), not the app's JSON.
    assert reply.body.startswith(b"%d " % status), reply.body[:200]
    assert reply.headers.get("Connection") == "close", reply.headers.items()
    assert conn.fp.read() == b"", "the connection stays open after the refusal"
    return reply
