"""A worker whose pool threads are all taken leaves new connections to an idle sibling.

With EPOLLEXCLUSIVE the kernel wakes one waiting worker per new connection, the first
registered one first; a gthread worker whose threads are all busy still waits in epoll_wait,
so it kept being woken and queued the connections behind its busy threads while its sibling
idled (`-w 2 --threads 1`: four 1-s requests ended at 1, 2, 3 and 4 s). It now stops watching
the listeners while its pool is full. Measured here: N slow requests at once, each on a new
connection, end in about ceil(N / 2) rounds of the app's sleep, and both workers serve.
The tornado kind serves a WSGI app with gthread's pool, so it is checked too.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

import pytest

from support.client import poll
from support.metrics import metric_sample
from support.server import WsgidServer, free_port

APP = "lifecycle_app:app"
SLEEP = 1.0  # one round: what each request sleeps in the app
REQUESTS = 6  # 3 rounds over two single-thread workers; 6 when one worker takes them all


@pytest.mark.parametrize("kind", ["gthread", "tornado"])
def test_slow_requests_on_new_connections_are_shared_by_both_workers(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    metrics = free_port()
    server = wsgid(
        APP, "--worker-class", kind, "--threads", "1", "--metrics-bind", f"127.0.0.1:{metrics}",
        workers=2,
    )  # fmt: skip
    # A worker is idle once it booted, and it watches the listeners from then on.
    poll(
        lambda: metric_sample(metrics, "wsgid_workers", state="idle") == 2,
        timeout=20,
        what="two idle workers",
    )
    start = threading.Barrier(REQUESTS + 1)
    ended: list[tuple[float, int]] = []
    lock = threading.Lock()
    began = 0.0

    def client() -> None:
        start.wait(timeout=30)
        pid = _pid(server, f"/sleep?s={SLEEP}")
        with lock:
            ended.append((time.monotonic() - began, pid))

    threads = [threading.Thread(target=client) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    start.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=60)
    assert len(ended) == REQUESTS, ended
    rounds = max(elapsed for elapsed, _ in ended) / SLEEP
    # ceil(N/2) = 3 rounds expected; one worker taking them all needs 6. Generous: 4.5.
    assert rounds < math.ceil(REQUESTS / 2) + 1.5, sorted(ended)
    assert len({pid for _, pid in ended}) == 2, sorted(ended)


def _pid(server: WsgidServer, path: str) -> int:
    """The pid of the worker that answered `path`, on a new connection."""
    resp = server.get(path, timeout=30)
    assert resp.status == 200, resp.text
    doc = json.loads(resp.body)
    assert isinstance(doc, dict)
    return int(doc["pid"])
