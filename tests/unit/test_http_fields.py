"""Header field names: environ keys, policy roles, the underscore modes, the bounded cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wsgid.http import fields
from wsgid.http.body import EMPTY_INPUT
from wsgid.http.environ import build
from wsgid.http.parser import Limits, Request, RequestParser


@pytest.fixture(autouse=True)
def default_mode() -> Iterator[None]:
    fields.map_underscores(False)
    yield
    fields.map_underscores(False)


def parse(head: bytes, limits: Limits | None = None) -> Request:
    parser = RequestParser(limits or Limits())
    parser.feed(head)
    return parser.ready.popleft()


@pytest.mark.parametrize(
    ("name", "key", "role"),
    [
        (b"Host", "HTTP_HOST", fields.HOST),
        (b"hOsT", "HTTP_HOST", fields.HOST),
        (b"Content-Length", "CONTENT_LENGTH", fields.CONTENT_LENGTH),
        (b"content-type", "CONTENT_TYPE", fields.CONTENT_TYPE),
        (b"Transfer-Encoding", "HTTP_TRANSFER_ENCODING", fields.TRANSFER_ENCODING),
        (b"EXPECT", "HTTP_EXPECT", fields.EXPECT),
        (b"X-Forwarded-For", "HTTP_X_FORWARDED_FOR", None),
        (b"Cookie", "HTTP_COOKIE", None),
    ],
)
def test_a_name_maps_to_its_cgi_key_and_policy_role(
    name: bytes, key: str, role: int | None
) -> None:
    assert fields.entry(name) == (key, role)
    assert fields.entry(name) is fields.CACHE[name]  # remembered


def test_underscore_names_are_left_out_unless_dangerous_and_never_frame_the_body() -> None:
    assert fields.entry(b"X_Forwarded_For") == ("", None)
    assert fields.entry(b"Content_Length") == ("", None)
    fields.map_underscores(True)
    assert fields.entry(b"X_Forwarded_For") == ("HTTP_X_FORWARDED_FOR", None)
    # Mapped into the environ, yet no role: llhttp frames by the real name only.
    assert fields.entry(b"Content_Length") == ("CONTENT_LENGTH", None)


def test_the_cache_stops_growing_at_its_bound() -> None:
    fields.CACHE.clear()
    for i in range(5000):
        assert fields.entry(b"X-Name-%d" % i) == (f"HTTP_X_NAME_{i}", None)
    assert len(fields.CACHE) == 4096


def test_the_environ_gets_each_field_once_with_repeats_joined() -> None:
    req = parse(
        b"GET /p?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\naccept: y\r\nCookie: a=1\r\n"
        b"Cookie: b=2\r\nX_Forged: 1\r\nContent-Type: text/plain\r\nX-Pad: v \t\r\n\r\n"
    )
    env = build({"SCRIPT_NAME": ""}, req, EMPTY_INPUT)
    assert env["HTTP_ACCEPT"] == "x, y"  # RFC 9110 §5.3
    assert env["HTTP_COOKIE"] == "a=1; b=2"  # RFC 6265 §5.4
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["HTTP_X_PAD"] == "v"  # OWS is not part of the value
    assert "HTTP_X_FORGED" not in env and not any("FORGED" in k for k in env)
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["SERVER_PROTOCOL"]) == (
        "/p",
        "q=1",
        "HTTP/1.1",
    )
    assert req.headers[2] == (b"accept", b"y")  # the fields as sent stay available (hooks)


def test_dangerous_mode_maps_underscore_names_into_the_environ() -> None:
    fields.map_underscores(True)
    env = build(
        {"SCRIPT_NAME": ""}, parse(b"GET / HTTP/1.1\r\nHost: a\r\nX_Forged: 1\r\n\r\n"), EMPTY_INPUT
    )
    assert env["HTTP_X_FORGED"] == "1"


def test_an_http_1_0_request_after_an_http_1_1_one_in_the_same_read_keeps_its_version() -> None:
    """The version comes from the request's own line, not a look-alike earlier in the read."""
    parser = RequestParser(Limits())
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    first, second = parser.ready
    assert (first.version, first.keep_alive) == ("HTTP/1.1", True)
    assert (second.version, second.keep_alive) == ("HTTP/1.0", False)
