"""The scoreboard: what every worker is doing, in memory the master reads without a syscall.

Owns: one slot per worker in anonymous shared memory, created by the master before it forks
and inherited by every worker, and the layout of a slot:

- the heartbeat (the worker's "last seen alive" stamp, compared with `timeout`);
- who holds it (pid, generation), its state (booting, ready, stopping) and why it ended
  (max_requests), written by the master and the worker off the request path;
- the requests running now, and for each running request a record: its method, path,
  request id and start time (`wsgid status`);
- counters: requests answered, by status code; app requests timed, their total duration and
  a histogram of durations; a ring of the latest durations (statsd's timer samples); log
  events by level; the last measured memory.

The request path only stamps: `begin` and `finish` are a few aligned 8-byte stores and
three short byte copies, no syscall. The counters are the worker's own lists until it
`publish`es them, a few times a second, off the request path. Every field is
an 8-byte word at an aligned offset, read and written through memoryviews of C doubles
("d") and 64-bit integers ("q") over the same memory: each access is one aligned 8-byte
copy, atomic on every platform wsgid runs on, so no lock is needed. (Not
`struct.pack_into`: it zeroes a field before writing it, so a reader could see 0.) The
gthread worker's threads add to the count of requests in the app together; the compiled
build runs each addition without letting go of the GIL, so none is lost (the pure-Python
build may, rarely, miscount one until the worker is replaced).

CLOCK_MONOTONIC is system-wide, so stamps from different processes compare directly, and
wall-clock jumps cannot kill workers.

The master has one slot of its own, the last, for the log events it emits itself.
"""

from __future__ import annotations

import mmap
import time
from bisect import bisect_right
from collections import Counter
from typing import Final

# Slot states.
FREE: Final = 0
BOOTING: Final = 1
READY: Final = 2
STOPPING: Final = 3
STATE_NAMES: Final = ("free", "booting", "ready", "stopping")

# Why a worker ended, as the worker says it (the master knows the other causes).
EXIT_MAX_REQUESTS: Final = 1
EXIT_THREADS_STUCK: Final = 2  # every pool thread ran past request_timeout: a timeout's restart

# Log levels counted (gunicorn's statsd counts these four: `gunicorn.log.<level>`).
LOG_LEVELS: Final = ("critical", "error", "warning", "exception")

# Upper bounds, in seconds, of the request duration histogram (the last bucket is +Inf).
# Not Final, unlike the other constants of the compiled modules: mypyc (2.4) keeps a Final tuple
# of floats unboxed, then fails to read it back (NameError: "value for final name ... was not
# set"). The same holds for any tuple of floats in a compiled module.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The same bounds in microseconds, as the workers count durations (and statsd samples them).
BUCKET_US: Final = tuple(int(bound * 1e6) for bound in DURATION_BUCKETS)

RING: Final = 64  # latest durations kept per worker: statsd's timer samples of an interval
CODES: Final = 500  # status codes 100 to 599

# Word offsets in a slot.
HEARTBEAT: Final = 0  # "d"
SPAWNED: Final = 1  # "d": when the master forked it
PID: Final = 2
GENERATION: Final = 3
STATE: Final = 4
EXIT_REASON: Final = 5
ACTIVE: Final = 6  # requests in the app now
ANSWERED: Final = 7  # responses, the app's and the refusals of malformed requests
TIMED: Final = 8  # app requests ended (the histogram's count)
DURATION_US: Final = 9  # their total duration, in microseconds
MEMORY: Final = 10  # bytes, as last measured by the master (0: not measured)
LOGS: Final = 11  # LOG_LEVELS counters
BUCKETS: Final = LOGS + len(LOG_LEVELS)  # len(DURATION_BUCKETS) + 1 counters (not cumulative)
STATUS: Final = BUCKETS + len(DURATION_BUCKETS) + 1  # CODES counters, status 100 at index 0
DURATIONS: Final = STATUS + CODES  # RING durations in microseconds, at TIMED % RING
RECORDS: Final = DURATIONS + RING

# A record: one running request. Its text is the method, the path and the request id one
# after the other (one copy per request), their lengths in REC_LENGTHS.
REC_STARTED: Final = 0  # "d"; 0.0: no request
REC_LENGTHS: Final = 1  # method length | path length << 8 | id length << 24
REC_TEXT: Final = 2
METHOD_BYTES: Final = 16
PATH_BYTES: Final = 224
ID_BYTES: Final = 48
REC_WORDS: Final = REC_TEXT + (METHOD_BYTES + PATH_BYTES + ID_BYTES) // 8


class Scoreboard:
    """`slots` worker slots (plus the master's), each with `records` request records."""

    def __init__(self, slots: int, records: int = 1) -> None:
        self.slots = slots
        self.records = max(1, records)
        self.slot_words = RECORDS + self.records * REC_WORDS
        self.master_slot = slots
        # mmap(-1) is MAP_SHARED | MAP_ANONYMOUS: shared with forked children. Pages are
        # given memory only when first written: unused slots cost address space only.
        self._mem = mmap.mmap(-1, (slots + 1) * self.slot_words * 8)
        self._raw = memoryview(self._mem)
        self._d = self._raw.cast("d")
        self._q = self._raw.cast("q")
        self.mine = slots  # the slot this process counts its log events in

    def close(self) -> None:
        # mmap refuses to close while a view exists
        self._d.release()
        self._q.release()
        self._raw.release()
        self._mem.close()

    # the heartbeat

    def beat(self, slot: int, now: float | None = None) -> None:
        self._d[slot * self.slot_words] = time.monotonic() if now is None else now

    def last(self, slot: int) -> float:
        value: float = self._d[slot * self.slot_words]
        return value

    # the request path (the worker)

    def begin(self, slot: int, record: int, method: str, path: bytes, rid: str, now: float) -> None:
        """A request of the worker in `slot` enters the app at `now`; `record` < 0: not shown."""
        base = slot * self.slot_words
        self._q[base + ACTIVE] += 1
        if record < 0 or record >= self.records:
            return
        at = base + RECORDS + record * REC_WORDS
        name = method.encode()
        ident = rid.encode()
        if len(name) > METHOD_BYTES or len(path) > PATH_BYTES or len(ident) > ID_BYTES:
            name, path, ident = name[:METHOD_BYTES], path[:PATH_BYTES], ident[:ID_BYTES]
        text = b"".join((name, path, ident))
        start = (at + REC_TEXT) * 8
        self._mem[start : start + len(text)] = text
        self._q[at + REC_LENGTHS] = len(name) | len(path) << 8 | len(ident) << 24
        self._d[at + REC_STARTED] = now  # last: a reader trusts a record by its stamp

    def finish(self, slot: int, record: int) -> None:
        """The request `begin` recorded left the app."""
        base = slot * self.slot_words
        if 0 <= record < self.records:
            self._d[base + RECORDS + record * REC_WORDS + REC_STARTED] = 0.0
        self._q[base + ACTIVE] -= 1

    def publish(self, slot: int, statuses: list[int], durations: list[int]) -> None:
        """Add what the worker in `slot` counted since it last published: the status of each
        response it sent, and the duration (microseconds) of each request that left the app.

        Workers count into their own lists and publish a few times a second, off the
        request path: the counters are seconds fresh, never wrong.
        """
        base = slot * self.slot_words
        q = self._q
        q[base + ANSWERED] += len(statuses)
        # Counted and sorted by the C builtins: per request, this costs a fraction of what a
        # loop over the requests would.
        for status, count in Counter(statuses).items():
            if 100 <= status < 100 + CODES:
                q[base + STATUS + status - 100] += count
        timed: int = q[base + TIMED]
        count = len(durations)
        for index in range(max(0, count - RING), count):  # the ring keeps the latest RING
            q[base + DURATIONS + (timed + index) % RING] = durations[index]
        ordered = sorted(durations)
        below = 0
        for bucket, bound in enumerate(BUCKET_US):
            upto = bisect_right(ordered, bound, below)
            q[base + BUCKETS + bucket] += upto - below
            below = upto
        q[base + BUCKETS + len(BUCKET_US)] += len(ordered) - below
        q[base + DURATION_US] += sum(durations)
        q[base + TIMED] = timed + count

    # off the request path

    def logged(self, level: str) -> None:
        """Count a log event of `level` in this process's slot (uncounted levels ignored)."""
        if level in LOG_LEVELS:
            self._q[self.mine * self.slot_words + LOGS + LOG_LEVELS.index(level)] += 1

    def set_state(self, slot: int, state: int) -> None:
        self._q[slot * self.slot_words + STATE] = state

    def state(self, slot: int) -> int:
        """The state of `slot`; the master's is STOPPING once the whole server stops."""
        value: int = self._q[slot * self.slot_words + STATE]
        return value

    def set_exit_reason(self, slot: int, reason: int) -> None:
        self._q[slot * self.slot_words + EXIT_REASON] = reason

    def set_memory(self, slot: int, size: int) -> None:
        self._q[slot * self.slot_words + MEMORY] = size

    def take(self, slot: int, pid: int, generation: int, now: float) -> None:
        """The master gives `slot` to a worker about to be forked: zeroed, then stamped."""
        base = slot * self.slot_words
        self._raw[base * 8 : (base + self.slot_words) * 8] = bytes(self.slot_words * 8)
        q = self._q
        q[base + PID] = pid
        q[base + GENERATION] = generation
        q[base + STATE] = BOOTING
        self._d[base + SPAWNED] = now
        self._d[base + HEARTBEAT] = now

    def set_pid(self, slot: int, pid: int) -> None:
        self._q[slot * self.slot_words + PID] = pid

    # reading (the master)

    def active(self, slot: int) -> int:
        """Requests of the worker in `slot` in the app now."""
        value: int = self._q[slot * self.slot_words + ACTIVE]
        return value

    def read(self, slot: int) -> SlotReading:
        """A copy of `slot` as it is now (each field as one atomic read)."""
        base = slot * self.slot_words
        q = self._q
        d = self._d
        reading = SlotReading()
        reading.heartbeat = d[base + HEARTBEAT]
        reading.spawned = d[base + SPAWNED]
        reading.pid = q[base + PID]
        reading.generation = q[base + GENERATION]
        reading.state = q[base + STATE]
        reading.exit_reason = q[base + EXIT_REASON]
        reading.active = q[base + ACTIVE]
        reading.answered = q[base + ANSWERED]
        reading.timed = q[base + TIMED]
        reading.duration_us = q[base + DURATION_US]
        reading.memory = q[base + MEMORY]
        reading.logs = q[base + LOGS : base + BUCKETS].tolist()
        reading.buckets = q[base + BUCKETS : base + STATUS].tolist()
        reading.codes = q[base + STATUS : base + DURATIONS].tolist()
        reading.durations = q[base + DURATIONS : base + RECORDS].tolist()
        for record in range(self.records):
            at = base + RECORDS + record * REC_WORDS
            started: float = d[at + REC_STARTED]
            if not started:
                continue
            lengths: int = q[at + REC_LENGTHS]
            raw = self._raw
            start = (at + REC_TEXT) * 8
            method_end = start + (lengths & 0xFF)
            path_end = method_end + (lengths >> 8 & 0xFFFF)
            method = bytes(raw[start:method_end])
            path = bytes(raw[method_end:path_end])
            rid = bytes(raw[path_end : path_end + (lengths >> 24 & 0xFF)])
            # A request that began meanwhile may mix with the one read: keep a record only
            # if its stamp did not change while it was copied.
            if d[at + REC_STARTED] == started:
                reading.running.append(
                    Running(
                        started,
                        method.decode("latin-1"),
                        path.decode("latin-1"),
                        rid.decode("latin-1"),
                    )
                )
        return reading


class Running:
    """A request in the app, as a slot's record shows it."""

    __slots__ = ("method", "path", "request_id", "started")

    def __init__(self, started: float, method: str, path: str, request_id: str) -> None:
        self.started = started
        self.method = method
        self.path = path
        self.request_id = request_id


class SlotReading:
    """One slot, copied out of the scoreboard."""

    def __init__(self) -> None:
        self.heartbeat = 0.0
        self.spawned = 0.0
        self.pid = 0
        self.generation = 0
        self.state = FREE
        self.exit_reason = 0
        self.active = 0
        self.answered = 0
        self.timed = 0
        self.duration_us = 0
        self.memory = 0
        self.logs: list[int] = []
        self.buckets: list[int] = []
        self.codes: list[int] = []
        self.durations: list[int] = []
        self.running: list[Running] = []
