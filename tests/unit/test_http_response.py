"""Response framing and PEP 3333 checks, in-process (no sockets)."""

from __future__ import annotations

import pytest

from wsgid.http.date import Dates
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request
from wsgid.http.response import Response, ResponseError
from wsgid.logs.clock import http_date

DATES = Dates(http_date)


def parse(raw: bytes) -> Request:
    parser = RequestParser(Limits())
    parser.feed(raw)
    return parser.ready[0]


def head_of(req: Request, status: str, headers: list[tuple[str, str]], known: int | None) -> bytes:
    resp = Response(req, DATES, worker_keeps=True)
    resp.start_response(status, headers)
    return resp.head(known)


GET11 = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_known_length_becomes_content_length() -> None:
    head = head_of(parse(GET11), "200 OK", [], 5)
    assert b"Content-Length: 5\r\n" in head
    assert b"Transfer-Encoding" not in head


def test_unknown_length_on_http11_is_chunked() -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response("200 OK", [])
    assert b"Transfer-Encoding: chunked\r\n" in resp.head(None)
    assert resp.frame(b"abc") == b"3\r\nabc\r\n"
    assert resp.end() == b"0\r\n\r\n"


def test_unknown_length_on_http10_closes() -> None:
    req = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    resp = Response(req, DATES, worker_keeps=True)
    resp.start_response("200 OK", [])
    head = resp.head(None)
    assert b"Connection: close\r\n" in head
    assert not resp.keep_alive()


def test_http10_keep_alive_is_announced() -> None:
    req = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection: keep-alive\r\n" in head_of(req, "200 OK", [], 0)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "205 Reset Content"])
def test_no_body_statuses_send_no_body(status: str) -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response(status, [])
    head = resp.head(None)
    assert b"Transfer-Encoding" not in head
    assert resp.frame(b"ignored") == b""


@pytest.mark.parametrize("known", [None, 5])
def test_205_says_a_zero_length_whatever_the_app_gives(known: int | None) -> None:
    # RFC 9110 §15.3.6: no content in a 205, and the zero length said so the client knows.
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response("205 Reset Content", [("Content-Length", "5")])
    head = resp.head(known)
    assert head.count(b"Content-Length") == 1 and b"Content-Length: 0\r\n" in head, head
    assert resp.frame(b"hello") + resp.end() == b""
    assert resp.body_dropped and resp.keep_alive()


def test_head_request_keeps_length_but_sends_no_body() -> None:
    resp = Response(parse(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), DATES, worker_keeps=True)
    resp.start_response("200 OK", [])
    assert b"Content-Length: 7\r\n" in resp.head(7)
    assert resp.frame(b"payload") == b""


def test_app_content_length_truncates_and_short_body_closes() -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response("200 OK", [("Content-Length", "4")])
    resp.head(None)
    assert resp.frame(b"abcdef") == b"abcd"
    short = Response(parse(GET11), DATES, worker_keeps=True)
    short.start_response("200 OK", [("Content-Length", "10")])
    short.head(None)
    short.frame(b"abc")
    short.end()
    assert not short.keep_alive()


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("20", []),
        ("2000", []),
        ("2O0", []),
        ("200OK", []),
        ("200\r\n", []),
        ("", []),
        ("OK 200", []),
        ("200 OK\r\nX: y", []),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("X-Split", "a\r\nInjected: yes")]),
        ("200 OK", [("X-Nul", "a\x00b")]),
        ("200 OK", [("Transfer-Encoding", "chunked")]),
        ("200 OK", [("Keep-Alive", "timeout=5")]),
        ("200 OK", [("X-Text", "snow ☃")]),
        ("200 OK", [["X-List", "not a tuple"]]),
        # A WSGI response is final (RFC 9110 §15.2); codes run 100-599 (§15).
        ("100 Continue", []),
        ("101 Switching Protocols", []),
        ("103 Early Hints", []),
        ("199 Whatever", []),
        ("600 Beyond", []),
        ("200 \u20ac", []),
    ],
)
def test_invalid_status_or_headers_are_refused(status: str, headers: list) -> None:  # type: ignore[type-arg]
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    with pytest.raises(ResponseError):
        resp.start_response(status, headers)


@pytest.mark.parametrize(
    ("status", "line"),
    [
        # RFC 9112 §4: the reason is optional, the SP before it is not.
        ("200", b"HTTP/1.1 200 OK\r\n"),
        ("404", b"HTTP/1.1 404 Not Found\r\n"),
        ("299", b"HTTP/1.1 299 \r\n"),  # no standard reason: an empty one
        ("200 ", b"HTTP/1.1 200 \r\n"),
        ("200 Fine", b"HTTP/1.1 200 Fine\r\n"),
    ],
)
def test_a_status_without_its_reason_is_sent_with_the_codes_own(status: str, line: bytes) -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response(status, [])
    assert resp.status_code == int(status[:3])
    assert resp.head(0).startswith(line)
    again = Response(parse(GET11), DATES, worker_keeps=True)  # from the caches this time
    again.start_response(status, [])
    assert again.head(0).startswith(line)


def test_connection_close_from_app_closes() -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response("200 OK", [("Connection", "close")])
    head = resp.head(0)
    assert head.count(b"Connection: close") == 1
    assert not resp.keep_alive()


def test_second_start_response_needs_exc_info() -> None:
    resp = Response(parse(GET11), DATES, worker_keeps=True)
    resp.start_response("200 OK", [])
    with pytest.raises(ResponseError):
        resp.start_response("500 Oops", [])
    try:
        raise ValueError("late")
    except ValueError as exc:
        resp.start_response("500 Oops", [], (ValueError, exc, exc.__traceback__))
    assert resp.status_code == 500


@pytest.mark.parametrize(
    ("request_bytes", "worker_keeps", "headers", "known", "keeps"),
    [
        (GET11, True, [], 0, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", True, [], 0, False),  # client
        (b"GET / HTTP/1.0\r\n\r\n", True, [], 0, False),  # HTTP/1.0 without keep-alive
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True, [], 0, True),
        (GET11, False, [], 0, False),  # the worker: keepalive = 0, a stop, max_requests
        (GET11, True, [("Connection", "close")], 0, False),  # the application
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True, [], None, False),  # framing
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", True, [], 0, True),  # drained
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", True, [], 0, False),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", True, [], 0, False),
    ],
)
def test_the_keep_alive_rule_and_what_the_head_announces(
    request_bytes: bytes,
    worker_keeps: bool,
    headers: list[tuple[str, str]],
    known: int | None,
    keeps: bool,
) -> None:
    req = parse(request_bytes)
    resp = Response(req, DATES, worker_keeps=worker_keeps)
    resp.start_response("200 OK", headers)
    head = resp.head(known)
    assert resp.keep_alive() is keeps
    assert (b"Connection: close\r\n" in head) is not keeps


def test_a_head_that_said_close_binds_even_once_the_body_is_complete() -> None:
    req = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
    resp = Response(req, DATES, worker_keeps=True)
    resp.start_response("200 OK", [])
    assert b"Connection: close\r\n" in resp.head(0)  # too much unread body to drain
    req.body_complete = True  # the app read it all after all
    assert not resp.keep_alive()  # RFC 9112 §9.6: the close announced is kept
