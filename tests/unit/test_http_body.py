"""`wsgi.input` over a request's body: whole, partial and line reads as pieces arrive."""

from __future__ import annotations

from collections import deque

from wsgid.http.body import InputStream
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"


def stream(body: bytes, first: int, piece: int) -> tuple[InputStream, Request]:
    """A stream whose request got `first` body bytes with its head, the rest `piece` at a time."""
    parser = RequestParser(Limits())
    parser.feed(HEAD % len(body) + body[:first])
    req = parser.ready.popleft()
    rest = deque(body[i : i + piece] for i in range(first, len(body), piece))
    return InputStream(req, lambda: parser.feed(rest.popleft()), None), req


def test_a_body_received_in_one_piece_is_handed_over_without_a_copy() -> None:
    body = bytes(range(256)) * 64
    parser = RequestParser(Limits())
    parser.feed(HEAD % len(body) + body)
    req = parser.ready.popleft()
    received = req.body
    assert type(received) is bytes and received == body
    assert InputStream(req, lambda: None, None).read() is received


def test_partial_reads_of_a_one_piece_body_return_it_in_order() -> None:
    body = b"0123456789" * 100
    wsgi_input, _ = stream(body, len(body), 1)
    parts = [wsgi_input.read(7) for _ in range(143)]
    assert b"".join(parts) == body and wsgi_input.read() == b""
    assert wsgi_input.tell() == len(body)


def test_reads_span_pieces_arriving_after_the_first() -> None:
    body = b"".join(b"line %d\n" % i for i in range(500))
    for first, piece in ((0, 1), (5, 3), (100, 1000), (len(body) - 1, 7)):
        wsgi_input, _ = stream(body, first, piece)
        assert wsgi_input.read(10) == body[:10]
        assert wsgi_input.readline() == body[10 : body.index(b"\n", 10) + 1]
        rest = list(wsgi_input)
        assert body[:10] + b"".join([body[10 : body.index(b"\n", 10) + 1], *rest]) == body


def test_read1_and_read_all_after_more_pieces() -> None:
    body = b"x" * 3000
    wsgi_input, req = stream(body, 1000, 1000)
    assert wsgi_input.read1(-1) == body[:1000]
    assert wsgi_input.read1(10) == body[1000:1010]
    assert wsgi_input.read() == body[1010:]
    assert req.body_complete and not req.body
