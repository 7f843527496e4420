"""The master's worker table, with real forked children and no master around it.

How a worker ended decides what the master does next: these tests fork children that end
each way (a boot report then exit 0, the app-load code, a signal, a heartbeat that stops)
and check what the table says of each, and that spawns and retirements follow the target.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from wsgid.exitcodes import ExitCode
from wsgid.worker_table import (
    ABORT_GRACE,
    BootFailure,
    WorkerProcess,
    WorkerTable,
)
from wsgid.workers.base import BOOTED, WORKER_SIGNALS

TIMEOUT = 30.0


class RecordingLog:
    """Stands in for the master's error log: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def record(event: str, **fields: Any) -> None:
            self.events.append((level, event, fields))

        return record

    def named(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(level, fields) for level, name, fields in self.events if name == event]


def _until_stopped() -> NoReturn:
    """A child that runs until a signal ends it, as a worker does."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    while True:
        signal.pause()


Behaviour = Callable[[WorkerTable], int]


@pytest.fixture
def make_table() -> Iterator[Callable[[Behaviour], tuple[WorkerTable, RecordingLog]]]:
    """A table whose children run the given behaviour; every child is gone after the test."""
    tables: list[WorkerTable] = []

    def make(behaviour: Behaviour) -> tuple[WorkerTable, RecordingLog]:
        log = RecordingLog()

        def pre_fork(record: WorkerProcess) -> None:
            log.events.append(("hook", "pre_fork", {"pid": record.pid}))

        table = WorkerTable(log, pre_fork, lambda record: behaviour(table))
        tables.append(table)
        return table, log

    yield make
    for table in tables:
        for pid in list(table.workers):
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        os.close(table.boot_r)
        os.close(table.boot_w)
        table.scoreboard.close()


def boots_then_exits(code: int) -> Behaviour:
    """A worker that reports its boot to the table, then exits with `code`."""

    def behaviour(table: WorkerTable) -> int:
        os.write(table.boot_w, BOOTED.pack(os.getpid()))
        return code

    return behaviour


def _one(table: WorkerTable, generation: int = 1) -> WorkerProcess:
    table.scale(generation, len(table.current(generation)) + 1)
    return max(table.workers.values(), key=lambda w: w.age)


def _ended(table: WorkerTable, worker: WorkerProcess, expected: bool = False) -> BootFailure | None:
    _, status = os.waitpid(worker.pid, 0)
    return table.remove(worker, status, expected, TIMEOUT)


def test_a_worker_that_reported_its_boot_and_exits_0_just_exited(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, log = make_table(boots_then_exits(0))
    worker = _one(table)
    assert log.named("pre_fork") == [("hook", {"pid": 0})]  # it runs before there is a pid
    _, status = os.waitpid(worker.pid, 0)
    table.read_boots()
    assert worker.booted
    assert log.named("worker.booted") == [("info", {"worker": worker.pid, "generation": 1})]
    assert table.remove(worker, status, expected=False, timeout=TIMEOUT) is None
    assert log.named("worker.exited") == [("info", {"worker": worker.pid, "status": "exit 0"})]
    assert table.workers == {}
    assert table.next_spawn == 0.0  # no backoff


@pytest.mark.parametrize(
    ("code", "exit_code", "reason"),
    [
        (ExitCode.APP_LOAD_FAILED, ExitCode.APP_LOAD_FAILED, "app could not be loaded"),
        (ExitCode.BOOT_FAILED, ExitCode.BOOT_FAILED, "boot error"),
        (0, ExitCode.BOOT_FAILED, "exit 0 before it booted"),
        (1, ExitCode.BOOT_FAILED, "exit 1 before it booted"),
    ],
)
def test_a_worker_that_exits_before_it_booted_failed_to_boot_whatever_its_code(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
    code: int,
    exit_code: int,
    reason: str,
) -> None:
    table, log = make_table(lambda table: code)
    worker = _one(table)
    failure = _ended(table, worker)
    assert failure == BootFailure(worker, exit_code, reason)
    [(level, fields)] = log.named("worker.boot_failed")
    assert level == "error"
    assert fields == {
        "worker": worker.pid,
        "exit_code": exit_code,
        "status": f"exit {code}",
        "reason": reason,
    }
    assert log.named("worker.exited") == []


def test_a_worker_killed_before_it_booted_failed_to_boot(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, _ = make_table(lambda table: _until_stopped())
    worker = _one(table)
    os.kill(worker.pid, signal.SIGKILL)
    failure = _ended(table, worker)
    assert failure is not None
    assert failure.reason == "killed by SIGKILL before it booted"
    assert failure.exit_code == ExitCode.BOOT_FAILED


def test_a_worker_the_master_stopped_before_it_booted_did_not_fail(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, log = make_table(lambda table: _until_stopped())
    worker = _one(table)
    table.retire(worker)
    assert _ended(table, worker, expected=worker.retiring) is None
    assert log.named("worker.exited") == [
        ("info", {"worker": worker.pid, "status": "killed by SIGTERM"})
    ]
    assert log.named("worker.boot_failed") == []


def test_a_quick_crash_after_booting_delays_the_next_spawn_by_the_first_step(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, log = make_table(boots_then_exits(1))
    for _ in range(2):
        table.next_spawn = 0.0  # this test checks the backoff; it does not wait it out
        worker = _one(table)
        _, status = os.waitpid(worker.pid, 0)
        table.read_boots()
        before = time.monotonic()
        assert table.remove(worker, status, expected=False, timeout=TIMEOUT) is None
        # Each worker booted before it crashed, which ends a crash streak: 0.1 s every time.
        assert 0.1 <= table.next_spawn - before < 0.2
    assert log.named("worker.respawn_delayed") == []
    assert [level for level, _ in log.named("worker.exited")] == ["error", "error"]


def test_crashes_without_a_boot_in_between_back_off_longer(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, log = make_table(lambda table: _until_stopped())
    for _ in range(3):
        table.backoff()
    assert [f["seconds"] for _, f in log.named("worker.respawn_delayed")] == [0.2, 0.4]
    # A spawn waits for the backoff: scale forks nothing before next_spawn.
    table.scale(1, 1)
    assert table.workers == {}


def test_scale_spawns_up_to_the_target_and_retires_the_oldest_first(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, _ = make_table(lambda table: _until_stopped())
    table.scale(1, 3)
    first, second, third = table.current(1)
    assert [w.age for w in (first, second, third)] == [1, 2, 3]
    assert len({w.slot for w in (first, second, third)}) == 3
    table.scale(1, 1)
    assert (first.retiring, second.retiring, third.retiring) == (True, True, False)
    assert table.current(1) == [third]
    for worker in (first, second):
        _, status = os.waitpid(worker.pid, 0)
        assert os.WTERMSIG(status) == signal.SIGTERM
        table.remove(worker, status, expected=True, timeout=TIMEOUT)


def test_retire_other_generations_keeps_only_the_one_named(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, _ = make_table(lambda table: _until_stopped())
    old = _one(table, generation=1)
    new = _one(table, generation=2)
    table.retire_other_generations(keep=2)
    assert (old.retiring, new.retiring) == (True, False)
    _, status = os.waitpid(old.pid, 0)
    table.remove(old, status, expected=True, timeout=TIMEOUT)


def test_a_silent_heartbeat_aborts_the_worker_then_kills_it_after_the_grace(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    def ignores_abort(table: WorkerTable) -> int:
        signal.signal(signal.SIGABRT, signal.SIG_IGN)  # as if busy dumping its stacks
        return _until_stopped()

    table, log = make_table(ignores_abort)
    worker = _one(table)
    table.check_timeouts(TIMEOUT)
    assert not worker.aborted_at  # stamped at spawn
    table.scoreboard.beat(worker.slot, time.monotonic() - TIMEOUT - 1)
    table.check_timeouts(TIMEOUT)
    assert worker.aborted_at
    assert log.named("worker.timeout") == [
        ("critical", {"worker": worker.pid, "timeout": TIMEOUT, "action": "aborting"})
    ]
    worker.aborted_at -= ABORT_GRACE + 1  # the grace has run out
    table.check_timeouts(TIMEOUT)
    failure = _ended(table, worker)
    assert failure is not None
    assert failure.reason == f"did not boot within the timeout ({TIMEOUT:g} s)"


def test_a_timeout_of_zero_never_aborts(
    make_table: Callable[[Behaviour], tuple[WorkerTable, RecordingLog]],
) -> None:
    table, log = make_table(lambda table: _until_stopped())
    worker = _one(table)
    table.scoreboard.beat(worker.slot, 0.0)
    table.check_timeouts(0)
    assert not worker.aborted_at
    assert log.named("worker.timeout") == []
