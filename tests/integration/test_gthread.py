"""The gthread worker's pool threads: started on demand, and never preempting the loop."""

from __future__ import annotations

import os
from collections.abc import Callable

from support.client import run_concurrently
from support.server import WsgidServer

SLEEP_APP = "sleep_app:app"


def test_pool_threads_are_sched_batch_and_the_loop_thread_is_not(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """SCHED_BATCH pool threads leave the loop (holding the GIL) running when woken."""
    server = wsgid(SLEEP_APP, "--worker-class", "gthread", "--threads", "3", workers=1)
    # Three requests at once: each needs its own thread (they sleep in the app).
    results = run_concurrently([lambda: server.get("/sleep?s=0.3") for _ in range(3)], timeout=20)
    assert all(r.status == 200 for r in results)
    (worker,) = server.worker_pids()
    tids = [int(t) for t in os.listdir(f"/proc/{worker}/task")]
    policies = {tid: os.sched_getscheduler(tid) for tid in tids}
    assert policies.pop(worker) == os.SCHED_OTHER  # the loop thread
    assert len(policies) == 3, policies  # one thread per concurrent request, started on demand
    assert set(policies.values()) == {os.SCHED_BATCH}, policies
