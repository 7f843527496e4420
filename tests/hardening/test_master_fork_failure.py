"""A fork that fails (no pids left) does not kill the master.

Under a pids limit os.fork() raises BlockingIOError; the master died of it with a raw
traceback, exit 1, and left the workers it had started serving unsupervised. Now each failed
fork is logged as `worker.fork_failed` and retried with the crash backoff, the master keeps
serving with the workers it has, and fills up once pids are available again. A binary
upgrade (USR2) whose fork fails is logged as `upgrade.failed`; the old master keeps serving.

Run in a real pids cgroup (v1, /sys/fs/cgroup/pids, writable by root). About the master
alone: the worker kind plays no part.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support.load import events, wait_event
from support.server import WsgidServer

WORKERS = 4
ROOM_FOR = 2  # workers that fit under the limit at first
WATCHED = 4.0  # seconds of failing forks counted


def test_the_master_survives_failed_forks_under_a_pids_limit_and_fills_up_later(
    pids_cgroup: Path, wsgid: Callable[..., WsgidServer]
) -> None:
    # The master itself, plus the workers that fit (the short-lived child that reads the
    # configuration has exited before any worker is forked).
    (pids_cgroup / "pids.max").write_text(f"{1 + ROOM_FOR}\n")

    def command(port: int) -> list[str]:
        enter = f'echo $$ > {pids_cgroup / "cgroup.procs"} && exec "$@"'
        wsgid_argv = [sys.executable, "-m", "wsgid", "sleep_app:app"]
        return ["sh", "-c", enter, "sh", *wsgid_argv, "-b", f"127.0.0.1:{port}", "-w", str(WORKERS)]

    server = wsgid(None, command=command)
    first = wait_event(server.errlog, "worker.fork_failed", check=server.check_running)
    assert "Resource temporarily unavailable" in first[0].fields.get("error", ""), first
    time.sleep(WATCHED)  # the measurement window itself, not a wait for a condition
    server.check_running()
    log = server.errlog()
    assert "Traceback" not in log, log
    failed = events(log, "worker.fork_failed")
    # Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s...: a handful in these seconds, never a tight loop.
    assert len(failed) <= 15, f"{len(failed)} failed forks\n{log}"
    assert len(server.wait_workers(ROOM_FOR)) == ROOM_FOR
    assert server.get("/pid").status == 200
    # A binary upgrade cannot fork either: it fails, and the master keeps serving.
    server.send_signal(signal.SIGUSR2)
    wait_event(server.errlog, "upgrade.failed", check=server.check_running)
    assert "cannot fork" in server.errlog(), server.errlog()
    assert server.get("/pid").status == 200

    (pids_cgroup / "pids.max").write_text("max\n")
    server.wait_workers(WORKERS, timeout=30)  # the backoff is at most 10 s
    assert server.get("/pid").status == 200
    assert server.stop() == 0
