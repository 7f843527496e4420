"""An app wrapped in `wsgiref.validate.validator` sees nothing to complain about.

tests/apps/validated_app.py turns every WSGIWarning into an exception (so a 500), and the
validator's assertions (e.g. an iterable never closed) print AssertionError on stderr. So each
test asserts a 200 and, after a clean stop, an error log free of both.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Callable, Iterator

import pytest

from support.client import chunked, random_bytes
from support.server import WsgidServer

APP = "validated_app:application"
COMPLAINTS = ("WSGIWarning", "AssertionError", "Traceback", "Exception ignored")


@pytest.fixture
def server(wsgid: Callable[..., WsgidServer]) -> Iterator[WsgidServer]:
    srv = wsgid(APP, workers=1)
    yield srv
    # Stop cleanly so that anything the validator reports at garbage collection is flushed too.
    if srv.proc is not None and srv.proc.poll() is None:
        assert srv.stop(signal.SIGTERM) == 0
    log = srv.errlog()
    found = [word for word in COMPLAINTS if word in log]
    assert not found, f"validator complained ({found}):\n{log}"


def echo(body: bytes) -> dict[str, object]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def test_validator_get(server: WsgidServer) -> None:
    r = server.get("/some/path?x=1&y=%20")
    assert r.status == 200, r.text
    data = echo(r.body)
    assert data["method"] == "GET"
    assert data["path"] == "/some/path"
    assert data["query"] == "x=1&y=%20"
    assert data["body_size"] == 0


def test_validator_head_has_no_body_and_connection_stays_usable(server: WsgidServer) -> None:
    get = server.get("/head-check")
    assert get.status == 200
    with server.raw() as conn:
        head = conn.request(b"HEAD /head-check HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "HEAD")
        assert head.status == 200
        assert head.body == b""
        # The echo of a HEAD is the GET's echo with "HEAD" for "GET": one byte longer.
        assert head.headers.get("Content-Length") == str(len(get.body) + 1)
        # Had wsgid sent the body after the HEAD response, it would be parsed as this response.
        after = conn.request(b"GET /after-head HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert after.status == 200
        assert echo(after.body)["path"] == "/after-head"


def test_validator_post(server: WsgidServer) -> None:
    data = random_bytes(200_000)
    r = server.request(
        "POST", "/post", body=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status == 200, r.text
    got = echo(r.body)
    assert got["method"] == "POST"
    assert got["content_length"] == str(len(data))
    assert got["body_size"] == len(data)
    assert got["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_validator_chunked_post(server: WsgidServer) -> None:
    pieces = [random_bytes(n) for n in (5, 5000, 70_000, 1)]
    data = b"".join(pieces)
    with server.raw() as conn:
        r = conn.request(
            b"POST /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(pieces),
            "POST",
        )
    assert r.status == 200, r.body
    got = echo(r.body)
    assert got["method"] == "POST"
    assert got["transfer_encoding"] == "chunked"
    assert got["body_size"] == len(data)
    assert got["body_sha256"] == hashlib.sha256(data).hexdigest()
