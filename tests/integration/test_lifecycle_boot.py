"""Boot failures: the master stops with the documented exit code instead of forking in a loop.

Exit codes (docs/running.md): 3 a worker failed to boot, 4 the application could not be
loaded. When no worker of the first generation ever boots, the master must stop within 5 s
and must not fork replacements: every fork is counted, both as the distinct worker pids seen
while polling and as the master's `worker.boot_failed` events in the error log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from support.load import events
from support.server import WsgidServer
from wsgid.exitcodes import ExitCode

CASES = {
    "boot_error": (
        ("lifecycle_app:app", "--worker-class", "lifecycle_bootfail.FailingWorker"),
        ExitCode.BOOT_FAILED,
        "this worker refuses to boot",
    ),
    "app_load_error": (("broken_import_app:app",), ExitCode.APP_LOAD_FAILED, "broken_import_app"),
}


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_first_generation_boot_failure_exits_with_its_code_within_5s_without_refork(
    wsgid: Callable[..., WsgidServer], case: str, workers: int
) -> None:
    args, code, reason = CASES[case]
    server = wsgid(*args, "--workers", str(workers), start=False)
    deadline = server.started_at + 5.0
    seen: set[int] = set()
    assert server.proc is not None
    while server.proc.poll() is None and time.monotonic() < deadline:
        seen.update(server.worker_pids())
        time.sleep(0.005)
    rc = server.wait_exit(timeout=max(0.001, deadline - time.monotonic()))
    log = server.errlog()
    assert rc == code, f"exit {rc}, expected {code}\n{log}"
    assert reason in log, log
    # The master's own events (they name the worker and its exit code), one per fork at most.
    failed = [e for e in events(log, "worker.boot_failed") if e.get("exit_code") is not None]
    assert 1 <= len(failed) <= workers, f"{len(failed)} boot failures for {workers} workers\n{log}"
    # The first failure decides; workers stopped meanwhile may report otherwise.
    assert failed[0].get("exit_code") == str(code), log
    assert len(seen) <= workers, f"{len(seen)} worker pids seen for {workers} workers: {seen}"
    stopped = events(log, "master.stopped")
    assert stopped and stopped[-1].get("exit_code") == str(code), log
