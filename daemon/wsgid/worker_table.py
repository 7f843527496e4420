"""The master's table of its worker processes.

Owns: one record per forked worker (`WorkerProcess`) and what concerns workers as processes:
forking one into a free scoreboard slot, reading the boot reports they write to the boot pipe,
classifying how each one ended once the master has reaped it, the backoff before the next
spawn after quick crashes and failed forks, the heartbeat timeout (SIGABRT, so that the worker
logs its stacks, then SIGKILL ABORT_GRACE later), the memory limit (a worker grown past
max_worker_memory is retired), retiring workers (TERM: they finish the requests in flight,
then exit), and why each one ended: its counters go to the totals (stats.py) with the cause
of its restart (exit, timeout, max_requests, memory) when it was one.

The generations are the master's: it decides how many workers each one has, which ones to
retire, and what a boot failure means (a failed reload, the stop of a first generation that
cannot boot, or a backoff), and it runs the hooks. What a forked child runs is the master's
too (`child_main`). Nothing here knows of HTTP or of the signals the master receives.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from wsgid import scoreboard as sb
from wsgid.exitcodes import ExitCode
from wsgid.processes import describe, memory
from wsgid.runtime import MAX_WORKERS
from wsgid.scoreboard import Scoreboard
from wsgid.stats import Totals
from wsgid.workers.base import BOOTED, WORKER_SIGNALS

# A reload runs two generations side by side, each of up to MAX_WORKERS. Workers retired
# earlier and still finishing their requests may hold slots too: a spawn then waits.
HEARTBEAT_SLOTS = 2 * MAX_WORKERS
ABORT_GRACE = 2.0  # seconds a timed-out worker gets to log its stacks before SIGKILL
BACKOFF_MAX = 10.0
# max_worker_memory: a worker over the limit at the first check since it began serving was
# recycled "early"; after this many early recyclings in a row, the limit is below what a
# serving worker needs (a cache its first requests fill), and recycling stops for the
# generation.
EARLY_RECYCLINGS = 3


class WorkerProcess:
    """The master's record of one forked worker.

    A plain class, not a dataclass: `dataclasses` (which imports `inspect`) costs every start
    about 5 ms on one CPU, and nothing else the master or a worker runs needs it."""

    # No __slots__: a gunicorn hook may keep its own attributes on it, as on gunicorn's.

    def __init__(self, pid: int, slot: int, generation: int, age: int, spawned: float) -> None:
        self.pid = pid
        self.slot = slot
        self.generation = generation
        self.age = age
        self.spawned = spawned
        self.booted = False
        self.retiring = False  # sent TERM: finishing its requests
        self.retired_for: str | None = None  # the restart cause it was retired for (memory)
        self.aborted_at = 0.0  # sent SIGABRT for a missed heartbeat
        self.boot_memory: int | None = None  # bytes when it booted, with max_worker_memory on
        self.memory_reported = False  # over max_worker_memory from its boot: said once
        # A memory check saw it under max_worker_memory after it had begun serving.
        self.memory_served = False
        self.extra: dict[str, Any] = {}  # free for hooks

    def __repr__(self) -> str:
        return f"WorkerProcess(pid={self.pid}, slot={self.slot}, age={self.age})"


class BootFailure(NamedTuple):
    """A worker that exited before it booted, and what the master's log said of it."""

    worker: WorkerProcess
    exit_code: int  # ExitCode.APP_LOAD_FAILED or BOOT_FAILED: the master's, if it must stop
    reason: str


class WorkerTable:
    """The workers the master forked and has not reaped yet, by pid."""

    def __init__(
        self,
        log: Any,
        pre_fork: Callable[[WorkerProcess], None],
        child_main: Callable[[WorkerProcess], int],
        records: int = 1,
    ) -> None:
        self.log = log  # the master's error log; the master replaces it when a reload does
        self._pre_fork = pre_fork  # runs in the master just before each fork
        self._child_main = child_main  # runs in each forked child; returns its exit status
        self.workers: dict[int, WorkerProcess] = {}
        # `records`: requests shown per worker while they run (the gthread threads).
        self.scoreboard = Scoreboard(HEARTBEAT_SLOTS, records)
        self.totals = Totals(self.scoreboard)
        self.boot_r, self.boot_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.next_spawn = 0.0  # monotonic time before which no worker is spawned (backoff)
        self._free_slots = deque(range(HEARTBEAT_SLOTS))
        self._age = 0
        self._crash_streak = 0
        self._spawn_deferred = False  # logged that no heartbeat slot is free
        # max_worker_memory's loop guard: (generation, early recyclings in a row), and the
        # generation whose memory recycling stopped (check_memory).
        self._early: tuple[int, int] = (0, 0)
        self._memory_kept_generation = 0

    def current(self, generation: int) -> list[WorkerProcess]:
        """The workers of `generation` not retiring, oldest first."""
        return sorted(
            (w for w in self.workers.values() if w.generation == generation and not w.retiring),
            key=lambda w: w.age,
        )

    # spawning

    def scale(self, generation: int, target: int) -> None:
        """Retire or spawn workers of `generation` towards `target`; spawns wait out the backoff."""
        current = self.current(generation)
        for worker in current[: max(0, len(current) - target)]:
            self.retire(worker)  # TTOU / WINCH: the oldest go first
        missing = target - len(current)
        while missing > 0 and time.monotonic() >= self.next_spawn and self._spawn(generation):
            missing -= 1

    def _spawn(self, generation: int) -> bool:
        """Fork one worker of `generation`; False if it must wait (logged)."""
        if not self._free_slots:
            # Only workers still finishing their requests after earlier reloads hold the
            # slots: this spawn waits for one of them to exit (next turn of the loop).
            if not self._spawn_deferred:
                self._spawn_deferred = True
                self.log.warning(
                    "worker.spawn_deferred", workers=len(self.workers),
                    reason="no free heartbeat slot until a stopping worker exits",
                )  # fmt: skip
            return False
        self._spawn_deferred = False
        slot = self._free_slots.popleft()
        self._age += 1
        record = WorkerProcess(0, slot, generation, self._age, time.monotonic())
        self.scoreboard.take(slot, 0, generation, record.spawned)
        self._pre_fork(record)
        # Until the child has its own handlers, a signal the master forwards
        # to it (a stop right after a spawn) would meet the master's handlers
        # and be lost, leaving a worker that ignores TERM. Blocked, it waits
        # pending until the worker unblocks it (Worker._init_signals).
        signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        # Frozen objects are never scanned by the cyclic GC. In the worker, everything it
        # inherits stays frozen: a full collection there would otherwise write to every object
        # the master made, copying most of the master's memory into the worker (4 MiB more
        # for hello world after one `gc.collect()`, measured). The master unfreezes at once
        # and collects as before.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            # EAGAIN at a pids limit (a cgroup's pids.max, RLIMIT_NPROC), ENOMEM: the
            # master keeps serving with the workers it has and retries after a backoff.
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            self._free_slots.appendleft(slot)
            self.log.error("worker.fork_failed", error=str(exc))
            self.backoff()
            return False
        if pid:
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            record.pid = pid
            self.scoreboard.set_pid(slot, pid)
            self.workers[pid] = record
            return True
        self._child(record)

    def _child(self, record: WorkerProcess) -> NoReturn:
        """In the forked child: run `child_main` and exit with its status, whatever happens."""
        code: int = ExitCode.ERROR
        try:
            os.close(self.boot_r)  # the master's end
            record.pid = os.getpid()
            code = self._child_main(record)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else ExitCode.ERROR
        except BaseException:
            with contextlib.suppress(BaseException):
                # The master's log, bound to the master's pid: this event is the worker's.
                self.log.exception("worker.crashed", pid=os.getpid())
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def backoff(self) -> None:
        """Delay the next spawn after quick crashes: 0.1 s, doubling up to BACKOFF_MAX."""
        self._crash_streak += 1
        delay = min(BACKOFF_MAX, 0.1 * 2 ** (self._crash_streak - 1))
        self.next_spawn = time.monotonic() + delay
        if self._crash_streak > 1:
            self.log.warning("worker.respawn_delayed", seconds=round(delay, 2))

    # booting and ending

    def read_boots(self, memory_metric: str | None = None) -> None:
        """Mark the workers whose boot report is in the pipe as booted.

        With `memory_metric` (max_worker_memory on), each one's memory is measured now, before
        it has served a request: what `check_memory` compares with the limit.
        """
        try:
            data = os.read(self.boot_r, 4096)
        except BlockingIOError:
            return
        for offset in range(0, len(data) - len(data) % BOOTED.size, BOOTED.size):
            (pid,) = BOOTED.unpack_from(data, offset)
            worker = self.workers.get(pid)
            if worker is None:
                continue
            worker.booted = True
            self._crash_streak = 0
            if memory_metric is not None:
                worker.boot_memory = memory(pid, memory_metric)
            self.log.info("worker.booted", worker=pid, generation=worker.generation)

    def remove(
        self, worker: WorkerProcess, status: int, expected: bool, timeout: float
    ) -> BootFailure | None:
        """Forget a reaped worker and log how it ended; its boot failure, if it was one.

        `expected`: the master asked it to stop. `timeout` is the heartbeat timeout, named
        when a worker was aborted before it booted.
        """
        del self.workers[worker.pid]
        reading = self.scoreboard.read(worker.slot)  # its last counts, before the slot goes
        self.totals.retire(worker.slot, reading, self._restart_cause(worker, expected, reading))
        self.scoreboard.set_state(worker.slot, sb.FREE)
        # Given again first: a recycled worker's successor takes its slot, so per-slot
        # resources (the app's prometheus_client files) stay as many as the workers.
        self._free_slots.appendleft(worker.slot)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if not worker.booted and not expected:
            return self._boot_failed(worker, status, code, timeout)
        # An error, as gunicorn logs a worker's unexpected exit or kill ("Perhaps out of
        # memory?"): alerts on its statsd `gunicorn.log.error` count fire for both.
        log = self.log.info if expected or code == 0 else self.log.error
        log("worker.exited", worker=worker.pid, status=describe(status))
        quick = time.monotonic() - worker.spawned < 1.0
        if not expected and code != 0 and quick:  # a crash, not a recycled worker
            self.backoff()
        return None

    def _restart_cause(
        self, worker: WorkerProcess, expected: bool, reading: sb.SlotReading
    ) -> str | None:
        """Why a reaped worker is replaced; None: it is not (a stop, a reload, fewer workers)."""
        if worker.aborted_at:
            return "timeout"
        if worker.retired_for is not None:
            return worker.retired_for
        if reading.exit_reason == sb.EXIT_MAX_REQUESTS:
            return "max_requests"
        if reading.exit_reason == sb.EXIT_THREADS_STUCK:
            return "timeout"  # its requests' request_timeout ended it, not the master's
        return None if expected else "exit"

    def _boot_failed(
        self, worker: WorkerProcess, status: int, code: int, timeout: float
    ) -> BootFailure:
        """A worker exited before it booted, however it ended: it failed to boot."""
        app_load = code == ExitCode.APP_LOAD_FAILED
        exit_code = int(ExitCode.APP_LOAD_FAILED if app_load else ExitCode.BOOT_FAILED)
        if app_load:
            reason = "app could not be loaded"  # the worker logged why
        elif code == ExitCode.BOOT_FAILED:
            reason = "boot error"
        elif worker.aborted_at:
            reason = f"did not boot within the timeout ({timeout:g} s)"
        else:
            reason = f"{describe(status)} before it booted"
        self.log.error(
            "worker.boot_failed", worker=worker.pid, exit_code=exit_code,
            status=describe(status), reason=reason,
        )  # fmt: skip
        return BootFailure(worker, exit_code, reason)

    # stopping

    def check_timeouts(self, timeout: float) -> None:
        """Abort the workers whose heartbeat is older than `timeout`; kill those that linger."""
        if timeout <= 0:
            return
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.aborted_at:
                if now - worker.aborted_at > ABORT_GRACE:
                    _kill(worker.pid, signal.SIGKILL)
            elif now - self.scoreboard.last(worker.slot) > timeout:
                # Critical, as gunicorn's "WORKER TIMEOUT": what its users alert on.
                self.log.critical(
                    "worker.timeout", worker=worker.pid, timeout=timeout, action="aborting"
                )
                worker.aborted_at = now
                _kill(worker.pid, signal.SIGABRT)

    def check_memory(self, generation: int, limit_mib: int, metric: str) -> None:
        """Retire the booted workers of `generation` whose memory has grown past `limit_mib`.

        The master spawns their replacements as for any retired worker. Workers of an older
        generation are being replaced anyway. Two limits below what a worker needs would
        restart the workers in a loop, each replacement as big as the worker it replaced:
        - a worker over the limit when it booted is not retired, only reported once;
        - when EARLY_RECYCLINGS workers in a row were over it at the first check since they
          began serving (the app fills a cache on its first requests), the next such worker
          is kept, the generation's recycling stops, and that is reported once.
        """
        limit = limit_mib * 1024 * 1024
        for worker in self.current(generation):
            if not worker.booted:
                continue
            used = memory(worker.pid, metric)
            if used is not None:
                self.scoreboard.set_memory(worker.slot, used)
            if used is None or used <= limit:
                if not worker.memory_served:
                    reading = self.scoreboard.read(worker.slot)
                    worker.memory_served = bool(reading.answered or reading.active)
                continue
            fields = {
                "worker": worker.pid, "metric": metric, "memory_mib": _mib(used),
                "limit_mib": limit_mib,
            }  # fmt: skip
            if worker.boot_memory is not None and worker.boot_memory > limit:
                if not worker.memory_reported:
                    worker.memory_reported = True
                    self.log.error(
                        "worker.memory_limit_below_boot", boot_memory_mib=_mib(worker.boot_memory),
                        action="kept; raise max_worker_memory above what a booted worker uses",
                        **fields,
                    )  # fmt: skip
                continue
            if self._memory_kept_generation == generation:
                continue
            early_generation, early = self._early
            early = early if early_generation == generation else 0
            if not worker.memory_served and early >= EARLY_RECYCLINGS:
                self._memory_kept_generation = generation
                self.log.error(
                    "worker.memory_limit_loop", recycled_early=early,
                    action="kept, and no more recycling for memory until a reload; raise "
                    "max_worker_memory above what a worker uses once it serves",
                    **fields,
                )  # fmt: skip
                continue
            self._early = (generation, 0 if worker.memory_served else early + 1)
            self.log.warning("worker.memory_limit", action="recycling", **fields)
            self.retire(worker, "memory")

    def retire(self, worker: WorkerProcess, cause: str | None = None) -> None:
        """TERM: the worker finishes its requests in flight, then exits; `cause`: the
        restart cause it counts as (None: it is not replaced, or not for a fault of its own)."""
        worker.retiring = True
        worker.retired_for = cause
        _kill(worker.pid, signal.SIGTERM)

    def retire_other_generations(self, keep: int) -> None:
        """Retire every worker not of generation `keep` (a reload done, or abandoned)."""
        for worker in self.workers.values():
            if worker.generation != keep and not worker.retiring:
                self.retire(worker)

    def signal_all(self, sig: int) -> None:
        """Send `sig` to every worker (a stop, USR1)."""
        for pid in list(self.workers):
            _kill(pid, sig)

    def kill_all(self) -> None:
        """SIGKILL every worker still running when a stop's grace ran out."""
        for pid in list(self.workers):
            self.log.warning("worker.killed", worker=pid, reason="graceful_timeout")
            _kill(pid, signal.SIGKILL)


def _mib(size: int) -> float:
    return round(size / (1024 * 1024), 1)


def _kill(pid: int, sig: int) -> None:
    """Send `sig` to `pid`, which may have exited meanwhile."""
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
