"""A gthread worker that cannot start a pool thread keeps serving.

Under a pids limit (a cgroup's pids.max, systemd's TasksMax=) starting a thread raises
RuntimeError ("can't start new thread"); the gthread worker died of it and dropped its
connections. Now the failure is logged (`worker.thread_start_failed`, rate-limited), requests
wait for the threads there are or, with none at all, run in the loop's thread as in the sync
worker, and a later request starts the thread once the limit allows.

Run in a real pids cgroup. About the gthread pool alone: the other kinds start no threads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from support.client import poll
from support.load import events, wait_event
from support.server import WsgidServer


def thread_of(server: WsgidServer) -> str:
    answer = server.get("/pid").json()
    assert isinstance(answer, dict), answer
    return str(answer["thread"])


def test_a_gthread_worker_without_threads_serves_in_its_loop_and_starts_them_later(
    pids_cgroup: Path, wsgid: Callable[..., WsgidServer]
) -> None:
    # The master and its one worker fit; a pool thread would be a third task.
    (pids_cgroup / "pids.max").write_text("2\n")

    def command(port: int) -> list[str]:
        enter = f'echo $$ > {pids_cgroup / "cgroup.procs"} && exec "$@"'
        argv = [sys.executable, "-m", "wsgid", "loop_app:app", "-b", f"127.0.0.1:{port}"]
        return ["sh", "-c", enter, "sh", *argv, "-w", "1", "-k", "gthread", "--threads", "4"]

    server = wsgid(None, command=command)
    [worker] = server.wait_workers(1)
    for _ in range(3):
        answer = server.get("/pid")
        assert answer.status == 200, answer
        assert answer.json() == {"pid": worker, "thread": "MainThread"}, answer.text
    failed = wait_event(server.errlog, "worker.thread_start_failed", check=server.check_running)
    assert "can't start new thread" in failed[0].fields.get("error", ""), failed
    log = server.errlog()
    assert len(events(log, "worker.thread_start_failed")) == 1, log  # rate-limited
    assert "Traceback" not in log, log

    (pids_cgroup / "pids.max").write_text("max\n")
    poll(
        lambda: thread_of(server) == "wsgid-0",
        timeout=10,
        what="a request run by a pool thread once threads can start",
    )
    assert server.wait_workers(1) == [worker], "the worker was replaced"
    assert server.stop() == 0
