"""A real Flask app and a real Django project served by a real wsgid process.

Each behaviour is checked for both frameworks (test ids `[flask]` / `[django]`); the apps live
in tests/apps/ and are installed by the test setup, not mocked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Callable, Iterator

import pytest

from support.client import chunked, multipart, random_bytes
from support.server import WsgidServer

APPS = {"flask": "flask_app:app", "django": "djproject.wsgi:application"}


@pytest.fixture(params=sorted(APPS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(framework: str, wsgid: Callable[..., WsgidServer]) -> WsgidServer:
    return wsgid(APPS[framework], workers=1)


def as_json(body: bytes) -> dict[str, object]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def test_framework_get_with_query_string(server: WsgidServer) -> None:
    query = "a=1&a=2&b=hello%20world&c=%C3%A9t%C3%A9&empty="
    r = server.get(f"/echo?{query}")
    assert r.status == 200, r.text
    data = as_json(r.body)
    assert data["raw_query"] == query
    assert data["path"] == "/echo"
    assert data["args"] == {"a": ["1", "2"], "b": ["hello world"], "c": ["été"], "empty": [""]}


def test_framework_post_form(server: WsgidServer) -> None:
    body = b"name=wsgid&tags=a&tags=b&text=caf%C3%A9+au+lait"
    r = server.request(
        "POST",
        "/form",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200, r.text
    assert as_json(r.body)["form"] == {
        "name": ["wsgid"],
        "tags": ["a", "b"],
        "text": ["café au lait"],
    }


def test_framework_post_json(server: WsgidServer) -> None:
    payload = {"numbers": [1, 2, 3], "text": "ünïcødé ✓", "nested": {"ok": True, "none": None}}
    r = server.request(
        "POST",
        "/json",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 200, r.text
    data = as_json(r.body)
    assert data["received"] == payload
    assert data["content_type"] == "application/json"


def test_framework_5mib_multipart_upload_arrives_intact(server: WsgidServer) -> None:
    data = random_bytes(5 * 1024 * 1024)
    body, ctype = multipart(
        {"note": "five mebibytes"}, {"file": ("blob.bin", data, "application/octet-stream")}
    )
    r = server.request("POST", "/upload", body=body, headers={"Content-Type": ctype}, timeout=60)
    assert r.status == 200, r.text
    assert as_json(r.body) == {
        "filename": "blob.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "five mebibytes",
    }


def test_framework_streamed_response_is_chunked(server: WsgidServer) -> None:
    conn = server.connection()
    try:
        conn.request("GET", "/stream?n=50")
        resp = conn.getresponse()
        assert resp.status == 200
        # No length known in advance: HTTP/1.1 framing must be chunked (no Content-Length).
        assert resp.headers.get("Content-Length") is None
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert resp.read() == "".join(f"chunk {i}\n" for i in range(50)).encode()
    finally:
        conn.close()


def test_framework_redirect(server: WsgidServer) -> None:
    r = server.get("/redirect")
    assert r.status == 302
    location = r.header("Location")
    assert location is not None and location.endswith("/echo?from=redirect"), location
    follow = server.get("/echo?from=redirect")
    assert follow.status == 200
    assert as_json(follow.body)["args"] == {"from": ["redirect"]}


def test_framework_unknown_path_is_404(server: WsgidServer) -> None:
    r = server.get("/no/such/page")
    assert r.status == 404


def test_framework_exception_is_500_with_traceback_and_worker_keeps_serving(
    server: WsgidServer, framework: str
) -> None:
    workers_before = server.worker_pids()
    r = server.get("/boom")
    assert r.status == 500
    log = server.wait_log(f"{framework} boom marker")
    assert "Traceback (most recent call last)" in log
    assert f"RuntimeError: {framework} boom marker" in log
    after = server.get("/echo?after=boom")
    assert after.status == 200
    assert as_json(after.body)["args"] == {"after": ["boom"]}
    assert server.worker_pids() == workers_before, "the worker was replaced after an app error"


def _chunk_pieces() -> list[bytes]:
    sizes = [1, 10, 100, 1000, 4096, 65536, 100_000, 7, 300_000]
    return [random_bytes(n) for n in sizes]


def test_framework_chunked_request_body(server: WsgidServer) -> None:
    pieces = _chunk_pieces()
    expected = b"".join(pieces)

    def body() -> Iterator[bytes]:
        yield from pieces

    r = server.request(
        "POST",
        "/raw",
        body=body(),
        headers={"Content-Type": "application/octet-stream"},
        encode_chunked=True,
    )
    assert r.status == 200, r.text
    data = as_json(r.body)
    assert data["transfer_encoding"] == "chunked"
    assert data["size"] == len(expected)
    assert data["sha256"] == hashlib.sha256(expected).hexdigest()


def test_framework_chunked_request_body_raw_socket_then_keepalive(server: WsgidServer) -> None:
    """Chunk extensions and a trailer on the wire; the connection stays usable afterwards."""
    pieces = [b"hello ", b"chunked ", b"world"]
    head = (
        b"POST /raw HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with server.raw() as conn:
        first = conn.request(
            head + chunked(pieces, extensions=True, trailer="X-Trailer: yes\r\n"), "POST"
        )
        assert first.status == 200, first.body
        assert json.loads(first.body)["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()
        # Nothing of the chunked body may be left over to be read as the next request.
        second = conn.request(b"GET /echo?second=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert second.status == 200
        assert json.loads(second.body)["args"] == {"second": ["1"]}


def test_flask_exception_after_headers_sent_closes_connection_and_is_logged(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APPS["flask"], workers=1)
    conn = server.connection()
    try:
        conn.request("GET", "/stream-boom")
        resp = conn.getresponse()
        assert resp.status == 200  # the head was already sent when the generator raised
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            resp.read()
    finally:
        conn.close()
    log = server.wait_log("flask stream-boom marker")
    assert "Traceback (most recent call last)" in log
    assert server.get("/").status == 200
