"""The request-head limits at their boundaries, for every worker kind (tests/conformance only).

Owns: `limit_request_line` (414), `limit_request_fields` and `limit_request_field_size` (431),
each at exactly the limit (passes) and one byte or field more (refused, app not called,
connection closed), at their defaults and at small configured values, and `0` where
gunicorn documents it as "unlimited" (request line, field size).

What is counted is gunicorn's documented meaning, which is also RFC 9112's grammar:
- the request line is `method SP request-target SP HTTP-version`, without its CRLF (RFC 9112
  §3; gunicorn: "the maximum size of HTTP request line in bytes");
- a header field is the field line `name ":" OWS value OWS`, without its CRLF (RFC 9112 §5;
  gunicorn: "the allowed size of an HTTP request header field"), whatever whitespace the
  client put around the value;
- the number of fields counts every field line, Host included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.conformance_server import ConformanceServer, running
from conformance.conformance_wire import Reply

LINE = 200
FIELDS = 10
FIELD_SIZE = 300
PROBE = b"GET /_probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def limited(kind: str, session_tmp: Path) -> Iterator[ConformanceServer]:
    args = ["--limit-request-line", str(LINE), "--limit-request-fields", str(FIELDS),
            "--limit-request-field-size", str(FIELD_SIZE)]  # fmt: skip
    with running(session_tmp, kind, args) as srv:
        yield srv


@pytest.fixture(scope="module")
def unlimited(kind: str, session_tmp: Path) -> Iterator[ConformanceServer]:
    args = ["--limit-request-line", "0", "--limit-request-fields", "0",
            "--limit-request-field-size", "0"]  # fmt: skip
    with running(session_tmp, kind, args) as srv:
        yield srv


def request_line(length: int, method: bytes = b"GET", query: bool = False) -> bytes:
    """A request line of exactly `length` bytes (CRLF not counted)."""
    fixed = len(method) + len(b" / HTTP/1.1") + (len(b"?q=") if query else 0)
    pad = b"a" * (length - fixed)
    target = b"/?q=" + pad if query else b"/" + pad
    line = method + b" " + target + b" HTTP/1.1"
    assert len(line) == length
    return line


def field_line(length: int, sep: bytes = b": ", trailing: bytes = b"") -> bytes:
    """An `X-Pad` field line of exactly `length` bytes (CRLF not counted)."""
    value = b"v" * (length - len(b"X-Pad") - len(sep) - len(trailing))
    line = b"X-Pad" + sep + value + trailing
    assert len(line) == length
    return line


def head(line: bytes, *fields: bytes, host: bool = True) -> bytes:
    all_fields = ((b"Host: example.org",) if host else ()) + fields
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in all_fields) + b"\r\n"


def accepted(srv: ConformanceServer, raw: bytes) -> Reply:
    """`raw` is served: 200 from the app, and the connection goes on (the probe is answered)."""
    before = srv.calls()
    with srv.wire() as w:
        w.send(raw + PROBE)
        reply = w.read_reply()
        assert reply.status == 200, f"{reply.summary()} for {raw[:120]!r}..."
        assert w.read_reply().json()["env"]["PATH_INFO"] == "/_probe"
    assert srv.calls() - before == 2
    return reply


def refused(srv: ConformanceServer, raw: bytes, status: int) -> None:
    """`raw` is refused with `status` before the app runs, and the connection closed."""
    before = srv.calls()
    with srv.wire() as w:
        w.send(raw + PROBE)
        reply = w.read_reply()
        assert reply.status == status, f"{reply.summary()} for {raw[:120]!r}..."
        assert reply.header("Connection") == "close"
        assert w.state_after() == "eof"
    assert srv.calls() == before, "the app was called"


# ------------------------------------------------------------------------ limit_request_line

LINE_SHAPES = [(b"GET", False), (b"GET", True), (b"OPTIONS", False), (b"DELETE", True)]
LINE_IDS = ["get-path", "get-query", "options-path", "delete-query"]


@pytest.mark.parametrize(("method", "query"), LINE_SHAPES, ids=LINE_IDS)
def test_request_line_of_exactly_the_limit_passes(
    limited: ConformanceServer, method: bytes, query: bool
) -> None:
    accepted(limited, head(request_line(LINE, method, query)))


@pytest.mark.parametrize(("method", "query"), LINE_SHAPES, ids=LINE_IDS)
def test_request_line_one_byte_over_the_limit_is_414(
    limited: ConformanceServer, method: bytes, query: bool
) -> None:
    refused(limited, head(request_line(LINE + 1, method, query)), 414)


def test_request_line_far_over_the_limit_is_414(limited: ConformanceServer) -> None:
    refused(limited, head(request_line(LINE * 50)), 414)


@pytest.mark.parametrize(
    "line",
    [b"A" * (LINE * 2) + b" / HTTP/1.1", b"A" * (LINE * 50), b"GET /" + b"a" * (LINE * 2)],
    ids=["unknown-method", "no-space-at-all", "no-version"],
)
def test_a_line_over_the_limit_is_414_whatever_else_is_wrong_with_it(
    limited: ConformanceServer, line: bytes
) -> None:
    refused(limited, head(line), 414)


def test_default_request_line_limit_is_4094(server: ConformanceServer) -> None:
    accepted(server, head(request_line(4094)))
    refused(server, head(request_line(4095)), 414)


def test_request_line_limit_0_is_unlimited(unlimited: ConformanceServer) -> None:
    accepted(unlimited, head(request_line(20_000)))


# ---------------------------------------------------------------------- limit_request_fields


def pads(n: int) -> list[bytes]:
    return [b"X-F%d: %d" % (i, i) for i in range(n)]


def test_exactly_the_limit_of_fields_passes(limited: ConformanceServer) -> None:
    reply = accepted(limited, head(b"GET / HTTP/1.1", *pads(FIELDS - 1)))
    assert reply.json()["env"][f"HTTP_X_F{FIELDS - 2}"] == str(FIELDS - 2)


def test_one_field_over_the_limit_is_431(limited: ConformanceServer) -> None:
    refused(limited, head(b"GET / HTTP/1.1", *pads(FIELDS)), 431)


def test_fields_limit_counts_repeated_names(limited: ConformanceServer) -> None:
    refused(limited, head(b"GET / HTTP/1.1", *([b"X-Same: 1"] * FIELDS)), 431)


def test_fields_limit_on_http10_without_host(limited: ConformanceServer) -> None:
    accepted(limited, head(b"GET / HTTP/1.0", *pads(FIELDS - 1), b"Connection: keep-alive",
                           host=False))  # fmt: skip
    refused(limited, head(b"GET / HTTP/1.0", *pads(FIELDS), b"Connection: keep-alive",
                          host=False), 431)  # fmt: skip


def test_default_fields_limit_is_100(server: ConformanceServer) -> None:
    accepted(server, head(b"GET / HTTP/1.1", *pads(99)))
    refused(server, head(b"GET / HTTP/1.1", *pads(100)), 431)


def test_fields_limit_0_allows_many_fields(unlimited: ConformanceServer) -> None:
    # gunicorn does not document 0 as unlimited here (it caps at 32768): many must pass.
    accepted(unlimited, head(b"GET / HTTP/1.1", *pads(1000)))


# ------------------------------------------------------------------ limit_request_field_size

FIELD_SHAPES = [(b": ", b""), (b":", b""), (b":    ", b""), (b":\t", b""), (b": ", b"   ")]
FIELD_IDS = ["sp", "no-ows", "4-sp", "htab", "trailing-ows"]


@pytest.mark.parametrize(("sep", "trailing"), FIELD_SHAPES, ids=FIELD_IDS)
def test_field_of_exactly_the_limit_passes(
    limited: ConformanceServer, sep: bytes, trailing: bytes
) -> None:
    reply = accepted(limited, head(b"GET / HTTP/1.1", field_line(FIELD_SIZE, sep, trailing)))
    assert reply.json()["env"]["HTTP_X_PAD"].strip(" \t").strip("v") == ""


@pytest.mark.parametrize(("sep", "trailing"), FIELD_SHAPES, ids=FIELD_IDS)
def test_field_one_byte_over_the_limit_is_431(
    limited: ConformanceServer, sep: bytes, trailing: bytes
) -> None:
    refused(limited, head(b"GET / HTTP/1.1", field_line(FIELD_SIZE + 1, sep, trailing)), 431)


def trailed(trailer: bytes) -> bytes:
    """A chunked POST whose trailer section is the one field line `trailer`."""
    line = b"POST / HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n"
    return line + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"


# A trailer field counts as a header field does, whitespace included (RFC 9112 §7.1.2).
@pytest.mark.parametrize(("sep", "trailing"), FIELD_SHAPES, ids=FIELD_IDS)
def test_trailer_field_of_exactly_the_limit_passes(
    limited: ConformanceServer, sep: bytes, trailing: bytes
) -> None:
    accepted(limited, trailed(field_line(FIELD_SIZE, sep, trailing)))


@pytest.mark.parametrize(("sep", "trailing"), FIELD_SHAPES, ids=FIELD_IDS)
def test_trailer_field_one_byte_over_the_limit_is_431(
    limited: ConformanceServer, sep: bytes, trailing: bytes
) -> None:
    refused(limited, trailed(field_line(FIELD_SIZE + 1, sep, trailing)), 431)


def test_field_size_limit_applies_to_host(limited: ConformanceServer) -> None:
    host = b"Host: " + b"h" * (FIELD_SIZE - 6)
    accepted(limited, head(b"GET / HTTP/1.1", host, host=False))
    refused(limited, head(b"GET / HTTP/1.1", host + b"h", host=False), 431)


def test_default_field_size_limit_is_8190(server: ConformanceServer) -> None:
    accepted(server, head(b"GET / HTTP/1.1", field_line(8190)))
    refused(server, head(b"GET / HTTP/1.1", field_line(8191)), 431)


def test_field_size_limit_0_is_unlimited(unlimited: ConformanceServer) -> None:
    accepted(unlimited, head(b"GET / HTTP/1.1", field_line(100_000)))
