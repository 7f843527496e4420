"""The C renderers of the json and logfmt access records (logs/records.c) against the Python ones.

`captured_json` and `captured_logfmt` hand a served request to `records.json_record` and
`records.logfmt_record` first, and render it in Python only when the C renderer declines
(returns None). Whatever a request and its environ hold, the record must be the Python path's,
byte for byte, and the usual request (ASCII text) must be the C renderer's to write, or the
compiled build would pay for both.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgid.http.request import Request
from wsgid.logs import access
from wsgid.logs.clock import iso_utc

records = pytest.importorskip(
    "wsgid.logs.records", reason="a pure-Python build has no C renderers (setup.py)"
)

FORMATS = ["json", "logfmt"]
# (the C renderer, captured_*, the Python renderer) of each format
RENDERERS: dict[str, tuple[Callable[..., str | None], Callable[..., str | None], Any]] = {
    "json": (records.json_record, access.captured_json, access.python_json),
    "logfmt": (records.logfmt_record, access.captured_logfmt, access.python_logfmt),
}

# Some Latin-1 and beyond (the C renderers' cue to decline) besides ASCII.
TEXT = st.text(st.characters(codec="utf-8", max_codepoint=0x2FF), max_size=12)
# Every ASCII character: the C renderers' own escapes, the characters each format escapes by
# name, and logfmt's reasons to quote (a space, `=`, an empty value).
ASCII_TEXT = st.text(st.characters(max_codepoint=0x7F), max_size=24)
ASCII_BYTES = st.binary(max_size=12).map(lambda b: bytes(c & 0x7F for c in b))


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


def python_or_error(fmt: str, item: access.Captured) -> str | type[BaseException]:
    try:
        return str(RENDERERS[fmt][2](item))
    except Exception as exc:
        return type(exc)


def captured_or_error(fmt: str, item: access.Captured) -> str | type[BaseException]:
    try:
        record = RENDERERS[fmt][1](item)
    except Exception as exc:
        return type(exc)
    assert record is not None  # a request with a method is captured_*'s to render
    return record


def c_record(fmt: str, item: access.Captured) -> str | None:
    """What the C renderer alone makes of `item`, given what `captured_*` gives it."""
    now, req, status, sent, environ, _, duration = item
    return RENDERERS[fmt][0](
        iso_utc(now), environ, access.remote_user(environ), req.method, req.path,
        req.query, req.version, status, sent, req.body_received, duration, access._process.text,
    )  # fmt: skip


# Every ASCII character in every text field, numbers up to 64 bits: the C renderer's to write.
ASCII_REQUEST = st.builds(
    captured,
    values=st.fixed_dictionaries({key: USUAL_VALUE for key in ENV_KEYS}),
    absent=st.sets(st.sampled_from(ENV_KEYS)),
    port=PORT,
    user=st.one_of(st.none(), ASCII_TEXT),
    path=ASCII_BYTES,
    query=ASCII_BYTES,
    numbers=st.tuples(*[st.integers(-(2**63), 2**63 - 1)] * 4),
    now=st.floats(0, 4e9),
)
# Besides those, non-ASCII text, other types and numbers past 64 bits.
ANY_REQUEST = st.builds(
    captured,
    values=st.fixed_dictionaries({key: VALUE for key in ENV_KEYS}),
    absent=st.sets(st.sampled_from(ENV_KEYS)),
    port=PORT,
    user=st.one_of(st.none(), TEXT),
    path=st.binary(max_size=12),
    query=st.binary(max_size=12),
    numbers=st.tuples(*[st.one_of(st.integers(-5, 10**6), st.integers(-(2**70), 2**70))] * 4),
    now=st.floats(0, 4e9),
)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=1500, deadline=None)
@given(item=ASCII_REQUEST)
def test_records_c_renders_an_ascii_request_as_the_python_path_does(
    fmt: str, item: access.Captured
) -> None:
    # The C renderer's to write (declining would still log the right record, at twice the
    # cost), and the same bytes as the Python path's.
    record = c_record(fmt, item)
    assert record is not None
    assert record == RENDERERS[fmt][2](item)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=1500, deadline=None)
@given(item=ANY_REQUEST)
def test_records_c_or_the_python_path_writes_any_request_as_the_python_path_does(
    fmt: str, item: access.Captured
) -> None:
    # What the C renderer declines is written by the Python path, or refused as the Python
    # path refuses it.
    assert captured_or_error(fmt, item) == python_or_error(fmt, item)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [1, 40, 2000])
def test_records_c_renders_the_usual_request_itself(fmt: str, size: int) -> None:
    # A browser's request, over and over: within the renderer's stack buffer, and past it.
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
    record = c_record(fmt, item)
    assert record is not None
    assert record == RENDERERS[fmt][2](item)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("caf\xe9", "non-ASCII text, which the Python path decodes as UTF-8"),
        (Text("x"), "a str subclass"),
        (b"x", "bytes"),
        (7, "an int"),
    ],
)
def test_records_c_declines_what_only_the_python_path_renders(
    fmt: str, value: object, why: str
) -> None:
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": value}
    args = ("t", environ, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1")
    assert RENDERERS[fmt][0](*args) is None, why


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_c_declines_numbers_past_64_bits_and_refuses_a_wrong_call(fmt: str) -> None:
    render = RENDERERS[fmt][0]
    args: list[Any] = ["t", {}, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1"]
    assert render(*args) is not None
    args[8] = 2**64
    assert render(*args) is None
    args[8] = -(2**63)
    assert str(-(2**63)) in str(render(*args))
    with pytest.raises(TypeError, match="12 arguments"):
        render(*args[:-1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_c_keeps_no_reference_it_does_not_own(fmt: str) -> None:
    # A leaked reference per record would grow a worker without bound.
    render = RENDERERS[fmt][0]
    environ = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "80", "HTTP_USER_AGENT": "a " * 1000}
    args = ("t", environ, None, "GET", b"/", b"", "HTTP/1.1", 200, 0, 0, 1, "1")
    before = [sys.getrefcount(v) for v in (environ, *environ.values())]
    for _ in range(1000):
        render(*args)
    assert [sys.getrefcount(v) for v in (environ, *environ.values())] == before


class Colliding:
    """An environ key of the app's that hashes as `name` and, when compared, changes the
    environ: each lookup of `name` runs Python code in the middle of the C renderer."""

    def __init__(self, name: str, environ: dict[Any, Any]) -> None:
        self.name, self.environ = name, environ

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        # A new value, made now, replaces the old one, which nothing else holds any more.
        self.environ["REMOTE_PORT"] = str(int(self.environ.get("REMOTE_PORT", "1")) + 1)
        return False


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["REMOTE_ADDR", "HTTP_USER_AGENT"])
def test_records_c_reads_each_environ_value_as_the_python_path_does_when_lookups_run_code(
    fmt: str, name: str
) -> None:
    # The C renderer holds borrowed references into the environ: each must be written before
    # the next lookup, which may change the environ (and free what it held), as the Python
    # path reads each value when it writes it.
    records = []
    for render in (lambda item: c_record(fmt, item), RENDERERS[fmt][2]):
        environ: dict[Any, Any] = {}
        environ[Colliding(name, environ)] = "x"  # probed before the real key
        environ.update({"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": str(5554 + 1)})
        environ["HTTP_USER_AGENT"] = "curl"
        item: access.Captured = (
            1_796_000_000.5,
            request("GET", b"/", b"", 0),
            200,
            2,
            environ,
            [],
            3,
        )
        records.append(render(item))
    assert records[0] is not None
    assert records[0] == records[1]
