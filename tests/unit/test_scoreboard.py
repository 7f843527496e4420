"""The scoreboard: stamps cross fork, and a reader never sees a torn stamp."""

from __future__ import annotations

import os
import time

from wsgid import scoreboard
from wsgid.scoreboard import Scoreboard


def test_a_stamp_written_in_a_child_is_read_by_the_parent() -> None:
    table = Scoreboard(4)
    try:
        table.beat(2, 123.5)
        pid = os.fork()
        if pid == 0:
            table.beat(3, 456.25)
            os._exit(0)
        os.waitpid(pid, 0)
        assert (table.last(0), table.last(2), table.last(3)) == (0.0, 123.5, 456.25)
    finally:
        table.close()


def test_the_master_never_reads_a_half_written_stamp_while_a_worker_beats() -> None:
    """A worker beats in a tight loop while the master reads the same slot.

    Every read must be one of the values written. struct.pack_into (used
    before) zeroes the field first, and this loop saw 0.0 in about 1 read in 60
    -- which the master took for a worker silent since boot and aborted it.
    """
    table = Scoreboard(2)
    table.beat(1, 1000.0)
    pid = os.fork()
    if pid == 0:
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                for _ in range(1000):
                    table.beat(1, 1000.0)
                    table.beat(1, 2000.0)
        finally:
            os._exit(0)
    seen: set[float] = set()
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            for _ in range(1000):
                seen.add(table.last(1))
    finally:
        table.close()
    assert seen <= {1000.0, 2000.0}, sorted(seen)
    assert seen == {1000.0, 2000.0}  # both values were observed: the loop raced for real


def test_a_running_request_is_seen_with_its_method_path_and_id_then_counted() -> None:
    board = Scoreboard(2, records=2)
    try:
        board.take(1, 4242, 3, time.monotonic())
        long_path = b"/" + b"p" * 500
        board.begin(1, 0, "GET", b"/slow", "abc123", 10.0)
        board.begin(1, 1, "POST", long_path, "x" * 100, 11.0)
        reading = board.read(1)
        assert (reading.pid, reading.generation, reading.active) == (4242, 3, 2)
        first, second = reading.running
        assert (first.method, first.path, first.request_id) == ("GET", "/slow", "abc123")
        assert (first.started, second.started) == (10.0, 11.0)
        assert len(second.path) == scoreboard.PATH_BYTES and len(second.request_id) == 48
        board.finish(1, 0)
        board.finish(1, 1)
        # 30 ms and 7 s; a refused request (400) is answered, not timed
        board.publish(1, [200, 503, 400], [30_000, 7_000_000])
        reading = board.read(1)
        assert reading.running == [] and reading.active == 0
        assert (reading.answered, reading.timed, reading.duration_us) == (3, 2, 7_030_000)
        codes = {i + 100: n for i, n in enumerate(reading.codes) if n}
        assert codes == {200: 1, 400: 1, 503: 1}
        bounds = (*scoreboard.DURATION_BUCKETS, float("inf"))
        filled = {bounds[i]: n for i, n in enumerate(reading.buckets) if n}
        assert filled == {0.05: 1, 10.0: 1}
        assert reading.durations[:2] == [30_000, 7_000_000]
        # A new worker in the slot starts from zero.
        board.take(1, 4343, 4, time.monotonic())
        assert board.read(1).answered == 0 and board.read(1).pid == 4343
    finally:
        board.close()


def test_log_events_count_in_the_slot_of_the_process() -> None:
    board = Scoreboard(2)
    try:
        board.logged("error")
        board.mine = 0
        board.logged("warning")
        board.logged("info")  # not counted
        assert board.read(board.master_slot).logs == [0, 1, 0, 0]
        assert board.read(0).logs == [0, 0, 1, 0]
    finally:
        board.close()


def test_the_ring_keeps_the_latest_durations_and_the_histogram_counts_them_all() -> None:
    board = Scoreboard(1)
    try:
        board.publish(0, [200] * 30, list(range(1, 31)))
        board.publish(0, [200] * 70, [1000 * n for n in range(31, 101)])
        reading = board.read(0)
        assert (reading.answered, reading.timed) == (100, 100)
        kept = {reading.durations[n % scoreboard.RING] for n in range(100 - scoreboard.RING, 100)}
        assert kept == {1000 * n for n in range(101 - scoreboard.RING, 101)}
        assert sum(reading.buckets) == 100
        # 1 to 30 µs are under 5 ms; 31 to 100 ms fill the 50, 100 ms buckets (and none above)
        assert reading.buckets[:6] == [30, 0, 0, 20, 50, 0]
    finally:
        board.close()
