"""`RequestParser` on its own: heads bounded while they arrive, each head found where it
starts, and a closed parser freed by reference counting alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence

import httptools
import pytest

from wsgid.http.errors import ProtocolError
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request

FIELD_SIZE = 8190  # limit_request_field_size's default
LINE = 4094  # limit_request_line's default


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def parse(reads: Sequence[bytes] | Iterator[bytes], limits: Limits | None = None) -> list[Request]:
    parser = RequestParser(limits or Limits())
    for read in reads:
        parser.feed(read)
    return list(parser.ready)


def refused_after(head: bytes, filler: bytes, piece: int) -> tuple[int, int]:
    """Feed `head`, then `filler` `piece` bytes at a time: (status, filler fed when refused)."""
    parser = RequestParser(Limits())
    parser.feed(head)
    fed = 0
    with pytest.raises(ProtocolError) as refused:
        while fed < 1 << 20:
            fed += piece
            parser.feed(filler * piece)
    return refused.value.status, fed


# ---------------------------------------------------------------- bounded while arriving


@pytest.mark.parametrize("piece", [1, 100, 4096, 65536])
def test_an_unfinished_field_is_refused_once_longer_than_limit_request_field_size(
    piece: int,
) -> None:
    prefix = b"X-Big: "
    status, fed = refused_after(b"GET / HTTP/1.1\r\nHost: x\r\n" + prefix, b"a", piece)
    assert status == 431
    # Not after the whole-head bound (~800 KB): as soon as the line is over the limit.
    assert len(prefix) + fed - piece <= FIELD_SIZE < len(prefix) + fed


@pytest.mark.parametrize("piece", [1, 1000, 65536])
def test_an_unfinished_request_line_is_refused_once_longer_than_limit_request_line(
    piece: int,
) -> None:
    status, fed = refused_after(b"GET /", b"a", piece)
    assert status == 414 and fed - piece <= LINE < len(b"GET /") + fed


def test_spaces_llhttp_skips_in_a_request_line_count_against_its_limit() -> None:
    status, fed = refused_after(b"GET", b" ", 100)
    assert status == 414 and fed <= LINE + 100


def test_an_unfinished_trailer_field_is_refused() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: "
    status, fed = refused_after(head, b"a", 1000)
    assert status == 431 and fed <= FIELD_SIZE + 2000


def test_each_trailer_field_counts_its_own_whitespace_against_the_field_size() -> None:
    """The same field twice, the second with more whitespace before its value: each line is
    measured as sent, the second too (it is not taken for the first)."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    value = b"v" * 40  # longer than the head's fields, which the limit must let through
    limits = Limits(field_size=len(b"X-T:  " + value))
    (req,) = parse([head + b"X-T: " + value + b"\r\nX-T:  " + value + b"\r\n\r\n"], limits)
    assert req.body == b"a"
    with pytest.raises(ProtocolError) as refused:
        parse([head + b"X-T: " + value + b"\r\nX-T:   " + value + b"\r\n\r\n"], limits)
    assert refused.value.status == 431


def test_a_head_just_under_every_limit_is_kept_across_reads_and_served() -> None:
    fields = [b"X-F%02d: " % i + b"v" * (FIELD_SIZE - 7) for i in range(98)]
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    for size in (1, 1000, 65536):
        (req,) = parse(pieces(head, size))
        assert list(req.field_lines) == [b"Host: x", *fields]


# ---------------------------------------------------------------- each head where it starts


def test_pipelined_requests_with_the_same_line_each_get_their_own_fields() -> None:
    first, second = parse(
        [b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\nX: 1\r\n\r\n"]
    )
    assert list(first.field_lines) == [b"Host: a"]
    assert list(second.field_lines) == [b"Host: b", b"X: 1"]


INNER = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Admin: yes\r\n\r\n"
NEXT = b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n"
BODIES = {
    "content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
    % (len(INNER), INNER),
    "chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x;e=1\r\n%s\r\n4\r\n\r\n\r\n\r\n0\r\nT: 1\r\n\r\n" % (len(INNER), INNER),
}


@pytest.mark.parametrize("framing", sorted(BODIES))
@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 13, 64, 1 << 16])
def test_a_request_in_a_body_lends_no_fields_to_the_next_request(framing: str, piece: int) -> None:
    posted, nxt = parse(pieces(BODIES[framing] + b"\r\n" + NEXT, piece))
    assert bytes(posted.body).startswith(INNER) and posted.body_complete
    assert nxt.method == "GET" and list(nxt.field_lines) == [b"Host: b"]


# ---------------------------------------------------------------- freed when closed


def live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


def test_a_closed_parser_is_freed_by_reference_counting_alone() -> None:
    # The compiled build's classes take no weak references, so the proof is a count of the
    # live instances the GC tracks, with the GC off: nothing but reference counting frees.
    gc.collect()
    gc.disable()
    try:
        before = live(RequestParser), live(httptools.HttpRequestParser)
        parser = RequestParser(Limits())
        parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000)  # unfinished
        refused = RequestParser(Limits())  # by feed() itself
        with pytest.raises(ProtocolError):
            refused.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000)
        in_callback = RequestParser(Limits(fields=2))  # by an llhttp callback
        with pytest.raises(ProtocolError):
            in_callback.feed(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n")
        assert live(RequestParser) == before[0] + 3
        for closing in (parser, refused, in_callback):
            closing.close()
        del parser, refused, in_callback, closing
        assert (live(RequestParser), live(httptools.HttpRequestParser)) == before
    finally:
        gc.enable()


def test_a_closed_parser_ignores_what_it_is_fed() -> None:
    parser = RequestParser(Limits())
    parser.feed(b"GET / HTTP/1.1\r\nHo")
    parser.close()
    parser.feed(b"st: x\r\n\r\n")
    assert not parser.ready and not parser.in_head
