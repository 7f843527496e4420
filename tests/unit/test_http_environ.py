"""The environ's request-line keys: right for every target, whichever path built them."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgid.http import environ, policy
from wsgid.http.body import EMPTY_INPUT
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request


def parse(line: bytes) -> Request:
    parser = RequestParser(Limits())
    parser.feed(line + b"\r\nHost: h\r\n\r\n")
    return parser.ready.popleft()


def build(line: bytes, script_name: str = "") -> dict[str, object]:
    base = {"SCRIPT_NAME": script_name, "SERVER_NAME": "h", "SERVER_PORT": "80"}
    return environ.build(base, parse(line), EMPTY_INPUT)


def test_request_line_keys_are_the_same_when_remembered_and_per_script_name() -> None:
    environ._LINES.clear()
    policy._ORIGIN_TARGETS.clear()
    line = b"GET /app/a%20b?q=1#frag HTTP/1.1"
    first = build(line)
    assert (first["PATH_INFO"], first["QUERY_STRING"], first["RAW_URI"]) == (
        "/app/a b",
        "q=1",
        "/app/a%20b?q=1#frag",
    )
    assert build(line) == first  # from the caches now
    assert build(line, "/app")["PATH_INFO"] == "/a b"  # SCRIPT_NAME is part of the key
    head = build(b"HEAD /app/a%20b?q=1#frag HTTP/1.0")
    assert (head["REQUEST_METHOD"], head["SERVER_PROTOCOL"]) == ("HEAD", "HTTP/1.0")


def test_absolute_form_and_long_targets_are_right_and_long_ones_not_kept() -> None:
    environ._LINES.clear()
    policy._ORIGIN_TARGETS.clear()
    env = build(b"GET http://example.com/x?y HTTP/1.1")
    assert (env["HTTP_HOST"], env["PATH_INFO"], env["QUERY_STRING"]) == ("example.com", "/x", "y")
    long_target = b"/" + b"a" * 300
    assert build(b"GET " + long_target + b" HTTP/1.1")["PATH_INFO"] == long_target.decode()
    assert long_target not in policy._ORIGIN_TARGETS
    assert not any(key[0] == long_target for key in environ._LINES)


def test_the_caches_stay_bounded() -> None:
    for i in range(3000):
        assert build(b"GET /n/%d HTTP/1.1" % i)["PATH_INFO"] == f"/n/{i}"
    assert 0 < len(environ._LINES) <= 512
    assert 0 < len(policy._ORIGIN_TARGETS) <= 512


@pytest.mark.parametrize(
    "path",
    [b"", b"/", b"/a%20b", b"%", b"/%", b"/%4", b"/%zz/%4a%4A", b"%%41", b"/%c3%A9", b"/%2F%00"],
)
def test_unquote_decodes_as_urllib_does(path: bytes) -> None:
    assert environ.unquote(path) == unquote_to_bytes(path)


PIECES = [b"%", b"a", b"F", b"4", b"g", b"/", b"%2", b"\xff"]


@given(st.lists(st.sampled_from(PIECES)).map(b"".join))
def test_unquote_decodes_any_path_as_urllib_does(path: bytes) -> None:
    assert environ.unquote(path) == unquote_to_bytes(path)
