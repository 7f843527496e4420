"""Worker liveness the master can read without a syscall.

Owns: a table of per-worker "last seen alive" stamps in anonymous shared
memory, created by the master before it forks and inherited by every worker.
A worker stamps its slot from its event loop; the master compares stamps with
`timeout`. CLOCK_MONOTONIC is system-wide, so stamps from different processes
compare directly, and wall-clock jumps cannot kill workers.

Stamps are 8-byte doubles at aligned offsets, written and read through a
memoryview of C doubles: each access is one aligned 8-byte copy, which is
atomic on every platform wsgid runs on, so no lock is needed. (Not
`struct.pack_into`: it zeroes the field before writing it, so a reader in the
master could see 0.0 -- a stamp "ages" old -- and abort a healthy worker.)
"""

from __future__ import annotations

import mmap
import time


class HeartbeatTable:
    """`slots` liveness stamps shared between the master and its workers."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # mmap(-1) is MAP_SHARED | MAP_ANONYMOUS: shared with forked children.
        self._mem = mmap.mmap(-1, slots * 8)
        self._stamps = memoryview(self._mem).cast("d")

    def beat(self, slot: int, now: float | None = None) -> None:
        self._stamps[slot] = time.monotonic() if now is None else now

    def last(self, slot: int) -> float:
        value: float = self._stamps[slot]
        return value

    def close(self) -> None:
        self._stamps.release()  # mmap refuses to close while a view exists
        self._mem.close()
