"""The heartbeat table: stamps cross fork, and a reader never sees a torn stamp."""

from __future__ import annotations

import os
import time

from wsgid.heartbeat import HeartbeatTable


def test_a_stamp_written_in_a_child_is_read_by_the_parent() -> None:
    table = HeartbeatTable(4)
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
    table = HeartbeatTable(2)
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
