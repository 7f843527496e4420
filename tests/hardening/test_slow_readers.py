"""A client that reads a large response slowly but steadily gets all of it, on every kind.

The kernel reports a socket writable again only once much of its send queue drained, and
that queue grows to megabytes (autotuned); a client reading at a few hundred KB/s takes
longer than the I/O timeout (`timeout`) to drain it. Such a client is reading, not stalled:
the response must not be cut at the timeout (it was: a clean FIN, and a 200 in the access
log). gthread, and tornado's pool, bound a request by `timeout` only while it makes no
progress, so the download also outlives gthread's per-request limit. A sync worker's file
download is the exception: sendfile blocks the worker, whose heartbeat `timeout` bounds it
(gunicorn's sync worker is killed the same way).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from support.kinds import kind_args
from support.server import WorkDir, WsgidServer

TIMEOUT = 2  # the I/O timeout, and gthread's request limit
SIZE = 24 << 20  # more than the kernel buffers on both sides hold
SLOW_FOR = 5.0  # seconds of slow reading: more than two I/O timeouts
CHUNK = 16384


@pytest.mark.parametrize("body", ["list", "file"])
def test_a_slow_steady_reader_gets_a_large_response_whole(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str, body: str
) -> None:
    if kind == "sync" and body == "file":
        pytest.skip("sync: sendfile blocks the worker, which its heartbeat timeout bounds")
    big = workdir.root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(SIZE)
    server = wsgid(
        "big_file_app:app", *kind_args(kind), "--timeout", str(TIMEOUT),
        env={"TESTAPP_BIG_FILE": str(big)}, workers=1,
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHUNK)
        query = "?list" if body == "list" else ""
        client.sendall(f"GET /{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        received = 0
        slow_until = time.monotonic() + SLOW_FOR
        while time.monotonic() < slow_until:  # about 300 KB/s: reading, but slowly
            data = client.recv(CHUNK)
            if not data:
                break
            received += len(data)
            time.sleep(0.05)
        while data := client.recv(1 << 20):  # then as fast as it comes
            received += len(data)
    head_size = received - SIZE
    assert 0 < head_size < 1024, f"{received} bytes of a {SIZE}-byte body and its head"
    assert server.stop() == 0


def test_an_event_stream_outlives_the_timeout_while_it_sends(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """Server-sent events, one a second for longer than `timeout`: gthread (and tornado's
    pool) count the limit from the last event the client took, so the stream goes on, as
    under gunicorn's gthread. (A sync worker is held by it, and so bounded by `timeout`.)"""
    if kind == "sync":
        pytest.skip("sync: the stream holds the worker, whose heartbeat timeout bounds it")
    count = 3 * TIMEOUT + 1
    server = wsgid(
        "big_file_app:app", *kind_args(kind), "--timeout", str(TIMEOUT),
        env={"TESTAPP_BIG_FILE": str(workdir.root)}, workers=1,
    )  # fmt: skip
    answer = server.get(f"/events?n={count}", timeout=count + 20)
    assert answer.status == 200
    assert answer.body.count(b"data: ") == count, answer.body
    assert server.stop() == 0
