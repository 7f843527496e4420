"""Header fields: environ keys, framing fields, the underscore modes, the bounded caches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgid.http import fields
from wsgid.http.body import EMPTY_INPUT
from wsgid.http.environ import build
from wsgid.http.errors import BadRequest
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request

# A connection's constant keys, as `environ.connection_base` has them (a TCP listener).
BASE = {"SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}


def parse(head: bytes, limits: Limits | None = None) -> Request:
    parser = RequestParser(limits or Limits())
    parser.feed(head)
    return parser.ready.popleft()


@pytest.mark.parametrize(
    ("name", "key", "frames"),
    [
        (b"Host", "HTTP_HOST", True),
        (b"hOsT", "HTTP_HOST", True),
        (b"Content-Length", "CONTENT_LENGTH", True),
        (b"content-type", "CONTENT_TYPE", True),
        (b"Transfer-Encoding", "HTTP_TRANSFER_ENCODING", True),
        (b"EXPECT", "HTTP_EXPECT", True),
        (b"X-Forwarded-For", "HTTP_X_FORWARDED_FOR", False),
        (b"Cookie", "HTTP_COOKIE", False),
    ],
)
def test_a_name_maps_to_its_cgi_key_and_whether_it_frames_the_request(
    name: bytes, key: str, frames: bool
) -> None:
    assert fields.entry(name) == (key, frames)
    assert fields.CACHE[name] == (key, frames)  # remembered


def test_underscore_names_are_left_out_unless_dangerous_and_never_frame_the_body() -> None:
    assert fields.entry(b"X_Forwarded_For") == ("", False)
    assert fields.entry(b"Content_Length") == ("", False)
    lines = [b"Host: a", b"X_Forwarded_For: 1", b"Content_Length: 5"]
    environ, framing, _, _ = fields.section(lines, "drop")
    assert environ == {"HTTP_HOST": "a"}
    environ, framing, _, _ = fields.section(lines, "dangerous")
    assert environ["HTTP_X_FORWARDED_FOR"] == "1"
    # Mapped into the environ, yet never framing: llhttp frames by the real name only.
    assert environ["CONTENT_LENGTH"] == "5" and "CONTENT_LENGTH" not in framing
    # The mode comes with each head: the same lines are still dropped in another.
    assert fields.section(lines, "drop")[0] == {"HTTP_HOST": "a"}


def test_the_name_cache_is_bounded() -> None:
    fields.CACHE.clear()
    for i in range(5000):
        assert fields.entry(b"X-Name-%d" % i) == (f"HTTP_X_NAME_{i}", False)
    assert 0 < len(fields.CACHE) <= 4096  # emptied when full, never past the bound


def test_long_names_are_mapped_but_never_kept_so_distinct_ones_cost_no_memory() -> None:
    """A client sending distinct 8 KB names held 4096 of them (and their keys) in each worker,
    64 MiB that stayed."""
    fields.CACHE.clear()
    for i in range(200):
        name = b"X%05d" % i + b"a" * 8000
        assert fields.entry(name) == (f"HTTP_X{i:05d}" + "A" * 8000, False)
    assert fields.CACHE == {}
    assert fields.entry(b"X-Request-ID") == ("HTTP_X_REQUEST_ID", False)
    assert b"X-Request-ID" in fields.CACHE  # the usual names are still remembered


def test_short_field_lines_are_remembered_and_the_line_cache_is_bounded() -> None:
    fields.LINES.clear()
    long_line = b"X-Long: " + b"v" * 300
    environ, _, _, _ = fields.section([b"Host: a", b"Accept: */*  ", long_line], "drop")
    assert environ == {"HTTP_HOST": "a", "HTTP_ACCEPT": "*/*", "HTTP_X_LONG": "v" * 300}
    assert fields.LINES[b"Accept: */*  "] == ("HTTP_ACCEPT", "*/*")
    assert long_line not in fields.LINES  # too long to keep
    for i in range(5000):
        fields.section([b"X-Id: %d" % i], "drop")
    assert 0 < len(fields.LINES) <= 2048  # emptied when full, never past the bound


def test_repeated_framing_fields_are_reported_and_joined() -> None:
    environ, framing, repeated, _ = fields.section(
        [b"Host: a", b"Transfer-Encoding: gzip", b"transfer-encoding: chunked", b"Host: b"], "drop"
    )
    assert repeated == {"HTTP_HOST", "HTTP_TRANSFER_ENCODING"}
    assert framing["HTTP_TRANSFER_ENCODING"] == "gzip, chunked"
    assert environ["HTTP_HOST"] == "a, b"


def test_refuse_mode_refuses_an_underscore_name() -> None:
    with pytest.raises(BadRequest):
        fields.section([b"Host: a", b"X_Forged: 1"], "refuse")
    environ, _, _, _ = fields.section([b"Host: a", b"X_Forged: 1"], "drop")
    assert environ == {"HTTP_HOST": "a"}


_NAMES = st.sampled_from(
    [b"Host", b"host", b"Accept", b"Cookie", b"cookie", b"Content-Length", b"Expect",
     b"Transfer-Encoding", b"X_Under", b"Content_Length", b"X-A", b"x-a", b"Content-Type"]
)  # fmt: skip
_VALUES = st.binary(max_size=12).map(
    lambda v: bytes(b for b in v if b not in b"\r\n\x00")
)  # what llhttp lets through as a value, leading and trailing OWS included


@given(st.lists(st.tuples(_NAMES, _VALUES), min_size=1, max_size=8), st.booleans())
def test_the_one_pass_path_agrees_with_the_field_by_field_one(
    pairs: list[tuple[bytes, bytes]], cached: bool
) -> None:
    """Whichever path a head takes, the environ, framing fields and repeats are the same."""
    lines = [name + b":" + value for name, value in pairs]
    if cached:
        fields.section(lines, "drop")  # remember what can be remembered first
    else:
        fields.LINES.clear()
    framing_keys = {"HTTP_HOST", "CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "CONTENT_TYPE",
                    "HTTP_EXPECT"}  # fmt: skip

    def judged(result: fields.Section) -> fields.Section:
        environ, framing, repeated, underscored = result  # framing: what policy.py reads
        framed = {k: v for k, v in framing.items() if k in framing_keys}
        return environ, framed, set(repeated), underscored

    one_pass = fields.section(lines, "drop")
    assert judged(one_pass) == judged(fields._field_by_field(lines, "drop", set(), set()))


def test_the_environ_gets_each_field_once_with_repeats_joined() -> None:
    req = parse(
        b"GET /p?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\naccept: y\r\nCookie: a=1\r\n"
        b"Cookie: b=2\r\nX_Forged: 1\r\nContent-Type: text/plain\r\nX-Pad: v \t\r\n\r\n"
    )
    env = build(BASE, req, EMPTY_INPUT)
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
    assert req.headers[-1] == (b"X-Pad", b"v")


def test_dangerous_mode_maps_underscore_names_into_the_environ() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX_Forged: 1\r\n\r\n"
    env = build(BASE, parse(head, Limits(header_map="dangerous")), EMPTY_INPUT)
    assert env["HTTP_X_FORGED"] == "1"


def test_an_http_1_0_request_after_an_http_1_1_one_in_the_same_read_keeps_its_version() -> None:
    """The version comes from the request's own line, not a look-alike earlier in the read."""
    parser = RequestParser(Limits())
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    first, second = parser.ready
    assert (first.version, first.keep_alive) == ("HTTP/1.1", True)
    assert (second.version, second.keep_alive) == ("HTTP/1.0", False)


@pytest.mark.parametrize(
    ("fields_sent", "waits"),
    [
        (b"Expect: 100-continue\r\n", True),
        (b"Expect: 100-Continue, x-other\r\n", True),  # a list member (RFC 9110 §5.6.1)
        (b"Expect: x-other\r\nExpect: 100-continue\r\n", True),  # repeated: the same list
        (b"Expect: x-other\r\n", False),
    ],
)
def test_expect_100_continue_is_honoured_as_any_member_of_the_list(
    fields_sent: bytes, waits: bool
) -> None:
    req = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n" + fields_sent + b"\r\n")
    assert req.expect_continue is waits
