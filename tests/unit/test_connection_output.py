"""How a connection sends a response given in two pieces (workers/connection.py), on real sockets.

Owns: `Connection.send` and `send_last` with a second piece (`more`): a small one is joined to
the first and goes as one; one of `SEPARATE_FROM` bytes or more goes after the first by one
vectored send, and whatever the kernel did not take, ending inside the first piece or inside
the second, is queued (the piece itself or a view of it, never a copy) and later sent in
order; a held response (`holds`) keeps only a small second piece. Each test sends through a
UNIX socket pair whose sending side has a small buffer, so the kernel takes part of a piece,
and reads everything back on the other side.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import pytest

from wsgid.http import environ
from wsgid.http.parser import Limits, RequestParser
from wsgid.workers.connection import SEPARATE_FROM, Connection

SEND_BUFFER = 32768  # the kernel doubles it; much less than the pieces below


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    """A connection over one end of a socket pair, and the other end (the client)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    ours.setblocking(False)
    theirs.settimeout(10)
    base = environ.connection_base(
        server=("127.0.0.1", "8000"), peer=("127.0.0.1", "50000"), url_scheme="http",
        multithread=False,
    )  # fmt: skip
    conn = Connection(ours, RequestParser(Limits()), base, io_timeout=10.0)
    try:
        yield conn, theirs
    finally:
        ours.close()
        theirs.close()


def piece(size: int, seed: int) -> bytes:
    """Bytes that repeat nowhere: a piece sent twice, dropped or out of order shows."""
    return random.Random(seed).randbytes(size)


def uncopied(queued: bytes | memoryview, piece: bytes) -> bool:
    """Whether `queued` is `piece` itself or a view of it, not a copy."""
    return queued is piece or (isinstance(queued, memoryview) and queued.obj is piece)


def received_after_flush(conn: Connection, client: socket.socket, expected: int) -> bytes:
    """Everything the client reads while the connection flushes its queue."""
    got = bytearray()

    def read() -> None:
        while len(got) < expected and (data := client.recv(1 << 16)):
            got.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    conn.flush_blocking()
    reader.join(timeout=10)
    assert not reader.is_alive(), f"{len(got)} of {expected} bytes arrived"
    return bytes(got)


@pytest.mark.parametrize(
    ("first", "second"),
    [(200, 1 << 20), (300_000, 300_000)],
    ids=["kernel-stops-in-the-second", "kernel-stops-in-the-first"],
)
def test_two_pieces_the_kernel_takes_in_part_arrive_whole_and_in_order(
    pair: tuple[Connection, socket.socket], first: int, second: int
) -> None:
    conn, client = pair
    data, more = piece(first, 1), piece(second, 2)
    conn.send(data, more)
    assert conn.out, "the kernel took everything: the test shows nothing"
    assert conn.out_size == sum(len(p) for p in conn.out) < first + second
    assert uncopied(conn.out[-1], more)
    assert received_after_flush(conn, client, first + second) == data + more
    assert conn.out_size == 0


def test_pieces_sent_behind_queued_output_keep_their_order(
    pair: tuple[Connection, socket.socket],
) -> None:
    conn, client = pair
    pieces = [piece(size, seed) for seed, size in enumerate((400_000, 150, 90_000, 70, 20))]
    conn.send(pieces[0])
    assert conn.out
    conn.send(pieces[1], pieces[2])  # queued as two: the second is past SEPARATE_FROM
    conn.send(pieces[3], pieces[4])  # queued joined
    assert conn.out_size == sum(len(p) for p in conn.out)
    total = sum(map(len, pieces))
    assert received_after_flush(conn, client, total) == b"".join(pieces)


def test_a_small_second_piece_goes_joined_with_the_first(
    pair: tuple[Connection, socket.socket],
) -> None:
    conn, client = pair
    data, more = piece(100, 1), piece(SEPARATE_FROM - 1, 2)
    conn.send(data, more)
    assert not conn.out  # the buffer takes 32 KiB when empty
    assert received_after_flush(conn, client, len(data) + len(more)) == data + more


def test_a_held_response_keeps_a_small_body_and_sends_a_large_one_at_once(
    pair: tuple[Connection, socket.socket],
) -> None:
    conn, client = pair
    conn.holds = True
    head, small = piece(120, 1), piece(500, 2)
    conn.send_last(head, small)
    assert conn.holding
    assert list(conn.out) == [head + small]  # one piece for the loop's turn-end send
    conn.holding = False  # what the loop's `_hold` does when it takes it
    assert received_after_flush(conn, client, len(head) + len(small)) == head + small

    conn.send_last(b"", small)  # the end of a streamed body: held as it is
    assert conn.holding
    assert conn.out[0] is small
    conn.holding = False
    assert received_after_flush(conn, client, len(small)) == small

    large = piece(1 << 20, 3)
    conn.send_last(head, large)
    assert not conn.holding  # sent at once, in one vectored send with its head
    assert received_after_flush(conn, client, len(head) + len(large)) == head + large


@pytest.mark.parametrize("size", [100, SEPARATE_FROM * 8])
def test_an_empty_first_piece_sends_the_second_alone_and_uncopied(
    pair: tuple[Connection, socket.socket], size: int
) -> None:
    """What a streamed body's later pieces and `write()` after the head give: (b"", piece)."""
    conn, client = pair
    more = piece(size, 4)
    conn.send(b"", more)
    assert conn.sends == 1
    if conn.out:  # the larger: what the kernel did not take is (a view of) the piece itself
        assert uncopied(conn.out[0], more)
    assert received_after_flush(conn, client, len(more)) == more
