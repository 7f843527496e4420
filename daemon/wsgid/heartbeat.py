"""Worker liveness the master can read without a syscall.

Owns: a table of per-worker "last seen alive" stamps in anonymous shared
memory, created by the master before it forks and inherited by every worker.
A worker stamps its slot from its event loop; the master compares stamps with
`timeout`. CLOCK_MONOTONIC is system-wide, so stamps from different processes
compare directly, and wall-clock jumps cannot kill workers.

Stamps are 8-byte doubles at aligned offsets: one aligned store is atomic on
every platform wsgid runs on, so no lock is needed.
"""

from __future__ import annotations

import mmap
import struct
import time

_STAMP = struct.Struct("d")


class HeartbeatTable:
    """`slots` liveness stamps shared between the master and its workers."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # mmap(-1) is MAP_SHARED | MAP_ANONYMOUS: shared with forked children.
        self._mem = mmap.mmap(-1, slots * _STAMP.size)

    def beat(self, slot: int, now: float | None = None) -> None:
        _STAMP.pack_into(self._mem, slot * _STAMP.size, time.monotonic() if now is None else now)

    def last(self, slot: int) -> float:
        value: float = _STAMP.unpack_from(self._mem, slot * _STAMP.size)[0]
        return value

    def close(self) -> None:
        self._mem.close()
