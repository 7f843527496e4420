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
        self.booting = 0
        self.busy = 0  # booted, with a request in the app
        self.idle = 0  # booted, none in the app
        self.stopping = 0  # told to stop, finishing its requests
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

    def status_codes(self) -> dict[int, int]:
        """Answered requests by status code, the codes seen so far."""
        return {code + 100: count for code, count in enumerate(self.codes) if count}


class Totals:
    """The master's running totals over the scoreboard."""

    def __init__(self, scoreboard: sb.Scoreboard) -> None:
        self.scoreboard = scoreboard
        self.retired = Snapshot()  # the reaped workers' counters
        # statsd samples: per slot, the pid and the count of timed requests already sampled
        self.sampled: dict[int, tuple[int, int]] = {}
        self.unsampled: list[int] = []  # durations of reaped workers not yet sampled
        self.unsampled_count = 0

    def retire(self, slot: int, cause: str | None) -> None:
        """A worker in `slot` was reaped: fold its counters in, count its restart `cause`."""
        reading = self.scoreboard.read(slot)
        self.retired.add(reading)
        if cause is not None:
            self.retired.restarts[cause] += 1
        durations, count = self._new_durations(slot, reading)
        self.unsampled = (self.unsampled + durations)[-sb.RING :]
        self.unsampled_count += count
        self.sampled.pop(slot, None)

    def snapshot(self, workers: Iterable[tuple[int, bool, bool]]) -> Snapshot:
        """The totals now; `workers`: (slot, booted, retiring) of every live worker."""
        total = Snapshot()
        total.add(self.retired)
        total.restarts = dict(self.retired.restarts)
        read = self.scoreboard.read
        for slot, booted, retiring in workers:
            reading = read(slot)
            total.add(reading)
            total.workers += 1
            total.active += max(0, reading.active)
            if retiring:
                total.stopping += 1
            elif not booted:
                total.booting += 1
            elif reading.active > 0:
                total.busy += 1
            else:
                total.idle += 1
        master = read(self.scoreboard.master_slot)
        _add(total.logs, master.logs)
        return total

    def durations(self, slots: Iterable[int]) -> tuple[list[int], int]:
        """The request durations (µs) no call has returned yet, and how many requests they
        stand for: each slot's ring holds the latest RING, so more than that is sampled."""
        samples, count = self.unsampled, self.unsampled_count
        self.unsampled, self.unsampled_count = [], 0
        read = self.scoreboard.read
        for slot in slots:
            durations, new = self._new_durations(slot, read(slot))
            samples += durations
            count += new
        return samples, count

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
