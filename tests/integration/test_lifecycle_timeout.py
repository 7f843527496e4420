"""A hung worker: the master dumps its Python stack and the request to the log, then replaces it.

The app's `/stuck` request sleeps forever inside a function named `stuck_view`. With
`--timeout 2`, within timeout + 3 s the error log must hold one event that names
`stuck_view`, the request path and the worker pid; the worker is then replaced and the next
request succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from support import procs
from support.client import poll
from support.load import events, wait_event
from support.server import WorkDir, WsgidServer

APP = "lifecycle_app:app"
TIMEOUT = 2.0
BOUND = TIMEOUT + 3.0  # the longest from the request reaching the app to the dump


def test_stuck_request_is_dumped_with_stack_path_and_pid_then_worker_replaced(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "--timeout", str(TIMEOUT), workers=1)
    (worker,) = server.wait_workers(1)
    marker = workdir.markers / "started-hung"
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(server.get, "/stuck?tag=hung", timeout=60)
        poll(lambda: marker.exists() and marker.read_text(), timeout=20, what="/stuck in the app")
        stuck_at = time.monotonic()
        assert int(marker.read_text()) == worker
        # Poll longer than the bound so that a miss reports the real delay, then hold to it.
        (dump,) = wait_event(server.errlog, "worker.timeout_dump", timeout=BOUND + 15)
        took = time.monotonic() - stuck_at
        fut.exception(timeout=30)  # the hung request's connection ends with the worker
    assert took <= BOUND, f"the stack dump came {took:.2f}s after the request hung"
    # One event (its line, plus the stack block under it when the format puts it there).
    assert "stuck_view" in dump.text, dump.text
    assert (dump.get("path") or "").startswith("/stuck"), dump.text
    assert dump.get("pid") == str(worker), dump.text
    assert procs.wait_gone([worker], timeout=10) == []
    replacement = poll(
        lambda: [p for p in server.worker_pids() if p != worker], timeout=20, what="a new worker"
    )
    resp = server.get("/pid")
    assert resp.status == 200 and resp.json()["pid"] in replacement  # type: ignore[index]
    log = server.errlog()
    assert len(events(log, "worker.timeout_dump")) == 1, log
    assert events(log, "worker.timeout", worker=worker), log
