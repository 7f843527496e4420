"""A worker that exits before it has booted failed to boot, however it ended.

An app module that exits 0 at import made the master fork in a tight loop (thousands of forks
a second, forever); one that calls os._exit(1), segfaults, or raises KeyboardInterrupt
at import was respawned forever too. Now, in the first generation, the master stops with
exit status 3 (4 when the app could not be loaded) and says how the worker ended; once the
server has booted, such workers are respawned with the crash backoff.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.kinds import kind_args
from support.load import events, wait_event
from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode

WORKERS = 2
WITHIN = 10.0  # seconds to exit (generous: a loaded machine; the old code never exited)
APP = "exit_at_import_app:app"


@dataclass(frozen=True)
class Ending:
    code: int  # the master's exit status
    reason: str  # in the error log


ENDINGS = {
    "sys_exit_0": Ending(
        ExitCode.APP_LOAD_FAILED, "the application exited with status 0 while being imported"
    ),
    "sys_exit_msg": Ending(
        ExitCode.APP_LOAD_FAILED,
        "the application exited with status 1 (exit_at_import_app says no) while being imported",
    ),
    "keyboard_interrupt": Ending(
        ExitCode.APP_LOAD_FAILED, "the application raised KeyboardInterrupt while being imported"
    ),
    "os_exit_0": Ending(ExitCode.BOOT_FAILED, 'reason="exit 0 before it booted"'),
    "os_exit_1": Ending(ExitCode.BOOT_FAILED, 'reason="exit 1 before it booted"'),
    "segfault": Ending(ExitCode.BOOT_FAILED, 'reason="killed by SIGSEGV before it booted"'),
}
# Endings Python itself turns into an exception, which --preload meets in the master.
PRELOAD_ENDINGS = ("sys_exit_0", "sys_exit_msg", "keyboard_interrupt")


def run_to_exit(server: WsgidServer, import_log: Path) -> tuple[int, list[str]]:
    rc = server.wait_exit(timeout=WITHIN)
    imports = import_log.read_text().splitlines() if import_log.exists() else []
    return rc, imports


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_a_worker_that_ends_while_importing_the_app_stops_the_first_generation(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str, ending: str
) -> None:
    expected = ENDINGS[ending]
    import_log = workdir.root / "imports.log"
    env = {"TESTAPP_EXIT_AT_IMPORT": ending, "TESTAPP_IMPORT_LOG": str(import_log)}
    server = wsgid(APP, *kind_args(kind), workers=WORKERS, env=env, start=False)
    rc, imports = run_to_exit(server, import_log)
    log = server.errlog()
    assert rc == expected.code, f"exit {rc}, expected {expected.code}\n{log}"
    assert expected.reason in log, log
    assert "Traceback" not in log, log
    # At most one fork per configured worker: the master's events name each failed worker.
    failed = [e for e in events(log, "worker.boot_failed") if e.fields.get("exit_code")]
    assert 1 <= len(failed) <= WORKERS, log
    assert failed[0].fields["exit_code"] == str(expected.code), log
    assert 1 <= len(imports) <= WORKERS, imports
    stopped = events(log, "master.stopped")
    assert stopped and stopped[-1].fields.get("exit_code") == str(expected.code), log


@pytest.mark.parametrize("ending", PRELOAD_ENDINGS)
def test_an_app_that_exits_while_preloaded_stops_the_master_with_4_and_one_line(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, ending: str
) -> None:
    import_log = workdir.root / "imports.log"
    env = {"TESTAPP_EXIT_AT_IMPORT": ending, "TESTAPP_IMPORT_LOG": str(import_log)}
    server = wsgid(APP, "--preload", workers=WORKERS, env=env, start=False)
    rc, imports = run_to_exit(server, import_log)
    log = server.errlog()
    assert rc == ExitCode.APP_LOAD_FAILED, f"exit {rc}\n{log}"
    assert ENDINGS[ending].reason in log, log
    assert "Traceback" not in log, log
    assert len(imports) == 1, imports  # in the master; no worker was forked


def test_after_boot_a_worker_that_exits_0_at_import_is_respawned_with_the_backoff(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    server = wsgid(APP, *kind_args(kind), workers=WORKERS)
    first, second = server.wait_workers(WORKERS)
    # Both booted (not only forked): a boot failure before that would stop the master.
    server.wait_log("master.ready", timeout=30)
    # From now on the app's module exits 0 at import: replacements can never boot.
    (workdir.markers / "exit-at-import").write_text("sys_exit_0")
    os.kill(first, signal.SIGKILL)
    wait_event(server.errlog, "worker.boot_failed", exit_code=ExitCode.APP_LOAD_FAILED)
    watched = 4.0
    time.sleep(watched)  # the measurement window itself, not a wait for a condition
    failed = events(server.errlog(), "worker.boot_failed", exit_code=ExitCode.APP_LOAD_FAILED)
    # Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s...: about six forks in these seconds; a tight
    # loop made hundreds.
    assert len(failed) <= 10, f"{len(failed)} failed boots in {watched}s\n{server.errlog()}"
    assert events(server.errlog(), "worker.respawn_delayed"), server.errlog()
    assert server.get("/").text == str(second), "the other worker stopped serving"
    (workdir.markers / "exit-at-import").unlink()
    server.wait_workers(WORKERS, timeout=30)  # back once the module imports again
    assert server.stop() == 0


def test_a_fast_stop_reaches_a_worker_waiting_inside_a_callback_of_its_import(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """The master's fast stop (INT; a failed boot stops the others the same way) sends the
    workers QUIT, which ends one at once even where Python would swallow an exception.

    The worker used to raise SystemExit from its QUIT handler; inside a weakref callback
    (importlib frees its module locks in one) Python printed "Exception ignored ...
    Traceback" and the import went on, so the stop waited for it.
    """
    import_log = workdir.root / "imports.log"
    env = {"TESTAPP_IMPORT_LOG": str(import_log)}
    server = wsgid("callback_at_import_app:app", *kind_args(kind), env=env, start=False)
    deadline = time.monotonic() + WITHIN
    while not (import_log.exists() and "in-callback" in import_log.read_text()):
        server.check_running()
        assert time.monotonic() < deadline, f"no callback reached\n{server.errlog()}"
        time.sleep(0.02)
    server.send_signal(signal.SIGINT)
    rc = server.wait_exit(timeout=WITHIN)
    log = server.errlog()
    assert rc == 0, f"exit {rc}\n{log}"
    assert "Exception ignored" not in log and "Traceback" not in log, log
