"""What the workers did, added up: the numbers behind statsd, Prometheus and `wsgid status`.

Owns: the master's totals over the scoreboard. A worker's counters live in its slot while it
runs; when the master reaps it they are folded into the totals here (`retire`), so that a
total never goes down when a worker is recycled, and the slot can be given to the next one.
Also the restarts by cause, and the statsd timer samples: the durations in the slots' rings
that no interval has sent yet.

Read only in the master, off the request path; nothing here runs unless something asks
(statsd's interval, a scrape, `wsgid status`).
"""

from __future__ import annotations

from collections.abc import Iterable

from wsgid import scoreboard as sb

RESTART_CAUSES = ("exit", "timeout", "max_requests", "memory")
STATES = ("booting", "idle", "busy", "stopping")


def worker_state(booted: bool, retiring: bool, active: int) -> str:
    """A worker's state, as metrics and `wsgid status` name it (one of STATES)."""
    if retiring:
        return "stopping"  # told to stop, finishing its requests
    if not booted:
        return "booting"
    return "busy" if active > 0 else "idle"  # busy: a request in the app


class Snapshot:
    """Totals at one moment: the reaped workers' plus the live ones'."""

    def __init__(self) -> None:
        self.answered = 0
        self.timed = 0
        self.duration_us = 0
        self.logs = [0] * len(sb.LOG_LEVELS)
        self.buckets = [0] * (len(sb.DURATION_BUCKETS) + 1)
        self.codes = [0] * sb.CODES
        self.workers = 0  # live workers, booted or not
        self.states = dict.fromkeys(STATES, 0)  # live workers by `worker_state`
        self.active = 0  # requests in the app now
        self.restarts: dict[str, int] = dict.fromkeys(RESTART_CAUSES, 0)

    def add(self, reading: sb.SlotReading | Snapshot) -> None:
        """Add the counters of a slot or of other totals (not their gauges)."""
        self.answered += reading.answered
        self.timed += reading.timed
        self.duration_us += reading.duration_us
        _add(self.logs, reading.logs)
        _add(self.buckets, reading.buckets)
        _add(self.codes, reading.codes)


class Totals:
    """The master's running totals over the scoreboard."""

    def __init__(self, scoreboard: sb.Scoreboard) -> None:
        self.scoreboard = scoreboard
        self.retired = Snapshot()  # the reaped workers' counters
        # statsd samples: per slot, the pid and the count of timed requests already sampled
        self.sampled: dict[int, tuple[int, int]] = {}
        self.unsampled: list[int] = []  # durations of reaped workers not yet sampled
        self.unsampled_count = 0

    def retire(self, slot: int, reading: sb.SlotReading, cause: str | None) -> None:
        """A worker in `slot`, last `reading`, was reaped: fold its counters in, count its
        restart `cause`."""
        self.retired.add(reading)
        if cause is not None:
            self.retired.restarts[cause] += 1
        durations, count = self._new_durations(slot, reading)
        self.unsampled = (self.unsampled + durations)[-sb.RING :]
        self.unsampled_count += count
        self.sampled.pop(slot, None)

    def snapshot(self, workers: Iterable[tuple[int, bool, bool]]) -> Snapshot:
        """The totals now; `workers`: (slot, booted, retiring) of every live worker."""
        total, _, _ = self._collect(workers, sample=False)
        return total

    def interval(
        self, workers: Iterable[tuple[int, bool, bool]]
    ) -> tuple[Snapshot, list[int], int]:
        """The totals now (as `snapshot`), with the request durations (µs) no interval has
        had yet and how many requests they stand for: each slot's ring holds the latest
        RING, so more than that is sampled. One read of each slot for both."""
        return self._collect(workers, sample=True)

    def _collect(
        self, workers: Iterable[tuple[int, bool, bool]], sample: bool
    ) -> tuple[Snapshot, list[int], int]:
        total = Snapshot()
        total.add(self.retired)
        total.restarts = dict(self.retired.restarts)
        samples: list[int] = []
        count = 0
        if sample:
            samples, count = self.unsampled, self.unsampled_count
            self.unsampled, self.unsampled_count = [], 0
        read = self.scoreboard.read
        for slot, booted, retiring in workers:
            reading = read(slot)
            total.add(reading)
            total.workers += 1
            total.active += max(0, reading.active)
            total.states[worker_state(booted, retiring, reading.active)] += 1
            if sample:
                durations, new = self._new_durations(slot, reading)
                samples += durations
                count += new
        master = read(self.scoreboard.master_slot)
        _add(total.logs, master.logs)
        return total, samples, count

    def _new_durations(self, slot: int, reading: sb.SlotReading) -> tuple[list[int], int]:
        pid, seen = self.sampled.get(slot, (reading.pid, 0))
        if pid != reading.pid:
            seen = 0  # the slot holds another worker now
        self.sampled[slot] = (reading.pid, reading.timed)
        new = reading.timed - seen
        if new <= 0:
            return [], 0
        ring = reading.durations
        kept = min(new, sb.RING)
        end = reading.timed % sb.RING
        picked = [ring[(end - 1 - i) % sb.RING] for i in range(kept)]
        picked.reverse()
        return picked, new


def _add(into: list[int], values: list[int]) -> None:
    for index, value in enumerate(values):
        into[index] += value
