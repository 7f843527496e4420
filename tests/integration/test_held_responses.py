"""Held responses (loop.py, "Held responses"): the last bytes of a response wait for the end
of the loop's turn, to go out with the turn's other responses, but never for another request's
slow app call (which only the sync worker's loop makes).

Throughput is `make bench`'s business (docs/performance.md); these tests hold the rules that
keep holding safe: what is held reaches the client whole and in order (pipelined, closing,
over many connections at once), and a fast response is sent before a slow app call that the
same turn makes next.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

import pytest

from support.client import RawConnection, poll, run_concurrently
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

SLEEP_APP = "sleep_app:app"


def started(workdir: WorkDir, tag: str) -> None:
    """Wait until the request tagged `tag` runs in the app."""
    marker = workdir.markers / f"started-{tag}"
    poll(lambda: marker.exists(), timeout=20, what=f"request {tag} in the app")


def test_held_fast_response_is_sent_before_the_next_slow_app_call_of_the_turn(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """A fast request and a slow one arrive in one turn: the fast one's answer does not wait
    for the slow one's app call (it goes out before that call, not at the end of the turn)."""
    server = wsgid(SLEEP_APP, workers=1)
    answered: dict[str, float] = {}

    def get(tag: str, path: str) -> None:
        r = server.get(path, timeout=30)
        assert r.status == 200, r.text
        answered[tag] = time.monotonic()

    with server.raw() as fast, server.raw() as slow:
        # Both accepted and kept alive first: the loop watches them, so requests that arrive
        # on both while the worker is busy come out of one epoll_wait, in one turn.
        for conn in (fast, slow):
            assert conn.request(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n").status == 200
        blocker = threading.Thread(target=get, args=("blocker", "/sleep?s=0.5&tag=blocker"))
        blocker.start()
        try:
            # The worker is in the blocker's app call: the next turn finds both requests
            # ready, the fast one first (it arrived first).
            started(workdir, "blocker")
            fast.send(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
            slow.send(b"GET /sleep?s=2&tag=slow HTTP/1.1\r\nHost: t\r\n\r\n")
            fast_answer = fast.read_response()
            fast_at = time.monotonic()
            assert fast_answer.status == 200
            started(workdir, "slow")
            slow_answer = slow.read_response()
            slow_at = time.monotonic()
            assert slow_answer.status == 200
        finally:
            blocker.join(timeout=30)
    # Had it been held to the end of the turn, it would have come with the slow answer.
    assert slow_at - fast_at > 1.0, (
        f"the fast answer came {slow_at - fast_at:.3f} s before the slow one: held for it"
    )
    assert "blocker" in answered


@pytest.mark.parametrize("kind", ["sync", "gthread"])
def test_held_responses_reach_many_keep_alive_clients_whole_and_in_order(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """20 connections, each sending 5 pipelined requests at a time, 10 times: every answer
    whole, in order, on its own connection (responses held and sent together by turn)."""
    server = wsgid(SLEEP_APP, "-k", kind, workers=1)

    def client(n: int) -> int:
        answers = 0
        with server.raw(timeout=20) as conn:
            for round_ in range(10):
                tags = [f"{n}-{round_}-{i}" for i in range(5)]
                conn.send(
                    b"".join(f"GET /pid?t={t} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for t in tags)
                )
                for _ in tags:
                    r = conn.read_response()
                    assert r.status == 200
                    assert b'"slept": 0.0' in r.body
                    answers += 1
        return answers

    counts = run_concurrently([functools.partial(client, n) for n in range(20)], timeout=60)
    assert counts == [50] * 20


@pytest.mark.parametrize("kind", ["sync", "gthread"])
def test_held_response_with_connection_close_is_sent_whole_before_the_close(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """A held last response, then the close it asked for: the client reads all of it, then EOF."""
    server = wsgid(SLEEP_APP, "-k", kind, workers=1)
    with server.raw() as conn:
        conn.send(
            b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert conn.read_response().status == 200
        last = conn.read_response()
        assert last.status == 200
        assert last.headers.get("connection") == "close"
        assert _eof(conn)


def _eof(conn: RawConnection) -> bool:
    """Whether the server closed the connection (nothing more to read)."""
    conn.sock.settimeout(10)
    try:
        return conn.fp.read(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_chunk_that_completes_its_length_is_sent_before_the_iterable_ends(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """A generator's chunk that completes its Content-Length reaches the client at once, not
    when the generator is done (its cleanup, a sleep): the app waits for the test to have
    read the whole body before it ends. (That chunk was held: streamed responses arrived a
    generator's last step late.)"""
    server = wsgid("lifecycle_app:app", *kind_args(kind), workers=1)
    with server.raw(timeout=10) as conn:
        conn.send(b"GET /tail?tag=t HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = conn.read_response()
    (workdir.markers / "release-t").touch()
    assert (reply.status, reply.body) == (200, b"tail\n")
    assert server.get("/pid").status == 200
    assert server.stop() == 0, server.errlog()
