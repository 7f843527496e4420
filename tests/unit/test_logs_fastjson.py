"""The C renderer of the JSON access record (logs/fastjson.c) against the Python one.

`captured_json` hands a served request to `fastjson.access_record` first and renders it in
Python only when the C renderer declines (returns None). Whatever a request and its environ
hold, the record must be the Python path's, byte for byte, and the usual request (ASCII text)
must be the C renderer's to write, or the compiled build would pay for both.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgid.http.request import Request
from wsgid.logs import access
from wsgid.logs.clock import iso_utc

fastjson = pytest.importorskip(
    "wsgid.logs.fastjson", reason="a pure-Python build has no C renderer (setup.py)"
)

# Every ASCII character (the C renderer's own escapes), some Latin-1 and beyond (its cue to
# decline), and the characters JSON escapes by name.
TEXT = st.text(st.characters(codec="utf-8", max_codepoint=0x2FF), max_size=12)
ASCII_TEXT = st.text(st.characters(max_codepoint=0x7F), max_size=24)


class Text(str):
    """A str subclass: what an app might put in the environ."""


USUAL_VALUE = st.one_of(st.none(), ASCII_TEXT)
VALUE = st.one_of(USUAL_VALUE, TEXT, st.builds(Text, ASCII_TEXT), st.binary(max_size=4))
PORT = st.one_of(
    st.none(),
    st.integers(0, 65535).map(str),
    st.sampled_from(["0", "00", "0042", "000080", "", " 80", "-1", "\xb2", "\u0663", "8o"]),
    st.builds(Text, st.sampled_from(["0080", "x"])),
    st.integers(0, 65535),
)
ENV_KEYS = ("REMOTE_ADDR", "HTTP_USER_AGENT", "HTTP_REFERER", "wsgid.request_id")


def request(method: str, path: bytes, query: bytes, received: int) -> Request:
    req = Request()
    req.method, req.path, req.query, req.body_received = method, path, query, received
    return req


def captured(
    values: dict[str, Any], absent: set[str], port: object, user: str | None,
    path: bytes, query: bytes, numbers: tuple[int, int, int, int], now: float,
) -> access.Captured:  # fmt: skip
    environ: dict[str, Any] = {k: v for k, v in values.items() if k not in absent}
    if port is not None:
        environ["REMOTE_PORT"] = port
    if user is not None:
        environ["REMOTE_USER"] = user
    status, sent, received, duration = numbers
    return (now, request("GET", path, query, received), status, sent, environ, [], duration)


def python_or_error(item: access.Captured) -> str | type[BaseException]:
    try:
        return access.python_json(item)
    except Exception as exc:
        return type(exc)


def captured_or_error(item: access.Captured) -> str | type[BaseException]:
    try:
        record = access.captured_json(item)
    except Exception as exc:
        return type(exc)
    assert record is not None  # a request with a method is captured_json's to render
    return record


def c_record(item: access.Captured) -> str | None:
    """What the C renderer alone makes of `item`, given what `captured_json` gives it."""
    now, req, status, sent, environ, _, duration = item
    return fastjson.access_record(  # type: ignore[no-any-return]
        iso_utc(now), environ, access.remote_user(environ), req.method, req.path,
        req.query, req.version, status, sent, req.body_received, duration, access._process.text,
    )  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(
    values=st.fixed_dictionaries({key: USUAL_VALUE for key in ENV_KEYS}),
    absent=st.sets(st.sampled_from(ENV_KEYS)),
    port=PORT,
    user=st.one_of(st.none(), ASCII_TEXT),
    path=st.binary(max_size=12).map(lambda b: bytes(c & 0x7F for c in b)),
    query=st.binary(max_size=12).map(lambda b: bytes(c & 0x7F for c in b)),
    numbers=st.tuples(*[st.integers(-(2**63), 2**63 - 1)] * 4),
    now=st.floats(0, 4e9),
)
def test_fastjson_renders_an_ascii_request_as_the_python_path_does(
    values: dict[str, Any], absent: set[str], port: object, user: str | None,
    path: bytes, query: bytes, numbers: tuple[int, int, int, int], now: float,
) -> None:  # fmt: skip
    # Every ASCII character in every text field, numbers up to 64 bits: the C renderer's
    # to write (declining would still log the right record, at twice the cost), and the
    # same bytes as the Python path's.
    item = captured(values, absent, port, user, path, query, numbers, now)
    record = c_record(item)
    assert record is not None
    assert record == access.python_json(item)


@settings(max_examples=2000, deadline=None)
@given(
    values=st.fixed_dictionaries({key: VALUE for key in ENV_KEYS}),
    absent=st.sets(st.sampled_from(ENV_KEYS)),
    port=PORT,
    user=st.one_of(st.none(), TEXT),
    path=st.binary(max_size=12),
    query=st.binary(max_size=12),
    numbers=st.tuples(*[st.one_of(st.integers(-5, 10**6), st.integers(-(2**70), 2**70))] * 4),
    now=st.floats(0, 4e9),
)
def test_fastjson_or_the_python_path_writes_any_request_as_the_python_path_does(
    values: dict[str, Any], absent: set[str], port: object, user: str | None,
    path: bytes, query: bytes, numbers: tuple[int, int, int, int], now: float,
) -> None:  # fmt: skip
    # Non-ASCII text, other types, numbers past 64 bits: declined by the C renderer and
    # written by the Python path, or refused as the Python path refuses them.
    item = captured(values, absent, port, user, path, query, numbers, now)
    assert captured_or_error(item) == python_or_error(item)


@pytest.mark.parametrize("size", [1, 40, 2000])
def test_fastjson_renders_the_usual_request_itself(size: int) -> None:
    # The C renderer declining would still log the right record (the Python path), at twice
    # the cost: the test above cannot see that. Sizes: within its stack buffer, and past it.
    environ = {
        "REMOTE_ADDR": "203.0.113.9",
        "REMOTE_PORT": "0443",
        "REMOTE_USER": "bob",
        "HTTP_USER_AGENT": 'Mozilla/5.0 (X11; Linux x86_64) "quoted" \\ \t\x01\x7f' * size,
        "HTTP_REFERER": "https://example.com/a?b=c",
        "wsgid.request_id": "0a1b2c3d00000001",
    }
    req = request("POST", b'/p%20ath/"x"\\', b"q=1&r=\x1f" * size, 16384)
    item: access.Captured = (1_796_000_000.5, req, 201, 2**40, environ, [], 17)
    record = c_record(item)
    assert record is not None
    assert record == access.python_json(item)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("caf\xe9", "non-ASCII text, which the Python path decodes as UTF-8"),
        (Text("x"), "a str subclass"),
        (b"x", "bytes"),
        (7, "an int"),
    ],
)
def test_fastjson_declines_what_only_the_python_path_renders(value: object, why: str) -> None:
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": value}
    args = ("t", environ, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1")
    assert fastjson.access_record(*args) is None, why


def test_fastjson_declines_numbers_past_64_bits_and_refuses_a_wrong_call() -> None:
    args: list[Any] = ["t", {}, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1"]
    assert fastjson.access_record(*args) is not None
    args[8] = 2**64
    assert fastjson.access_record(*args) is None
    args[8] = -(2**63)
    assert f'"bytes_sent":{-(2**63)},' in fastjson.access_record(*args)
    with pytest.raises(TypeError, match="12 arguments"):
        fastjson.access_record(*args[:-1])


def test_fastjson_keeps_no_reference_it_does_not_own() -> None:
    # A leaked reference per record would grow a worker without bound.
    environ = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "80", "HTTP_USER_AGENT": "a" * 2000}
    args = ("t", environ, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1")
    before = [sys.getrefcount(v) for v in (environ, *environ.values())]
    for _ in range(1000):
        fastjson.access_record(*args)
    assert [sys.getrefcount(v) for v in (environ, *environ.values())] == before
