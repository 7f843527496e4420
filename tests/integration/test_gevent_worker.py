"""The gevent worker kind (`-k gevent`): what is its own, apart from the suites every kind runs.

The conformance, hardening, TLS, PROXY protocol and metrics suites run over every kind of
`wsgid.workers.KINDS`, gevent included. Here, with `cooperative_app` (tests/apps):

- the worker is monkey-patched before the app is imported: the app sees gevent's socket,
  ssl, threading and time modules, gevent's locks and thread-locals, and a subclass of
  `ssl.SSLContext` it made at import works (no RecursionError, gunicorn#1559); the thread
  pool module whose pre-patch lock hung gunicorn's gevent workers (gunicorn#3482) holds
  gevent's lock (what else the worker inherited from the master is listed in
  docs/architecture.md, "The gevent worker");
- the master never loads gevent: its memory maps have none of its compiled modules;
- one worker runs many requests that wait at once (200 of 1 s each end together);
- `preload_app` is refused by `wsgid check` and at start, with the reason;
- a hub blocked by CPU-bound code is reported with the blocking code's stack before the
  heartbeat timeout replaces the worker;
- `wsgi.multithread` is true.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.server import WsgidServer
from wsgid.exitcodes import ExitCode

APP = "cooperative_app:app"
GEVENT = ("--worker-class", "gevent")


def maps_library(pid: int, name: str) -> bool:
    """Whether process `pid` has a shared object whose path contains `name` mapped."""
    return name in Path(f"/proc/{pid}/maps").read_text()


def test_gevent_patches_the_worker_before_the_app_is_imported(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, *GEVENT, workers=1)
    seen = json.loads(server.get("/import").body)
    assert seen["patched"] == {"socket": True, "ssl": True, "threading": True, "time": True}
    # gevent's classes (its compiled modules' names vary: gevent._gevent_clocal, ...)
    assert seen["lock"].startswith("gevent") and seen["local"].startswith("gevent"), seen
    assert seen["futures_lock"].startswith("gevent"), seen  # imported after it (gunicorn#3482)
    answer = server.get("/ssl")  # an ssl.SSLContext subclass made at the app's import
    assert (answer.status, answer.body) == (200, b"ssl ok"), server.errlog()
    assert "RecursionError" not in server.errlog()
    assert server.stop() == 0, server.errlog()


def test_gevent_is_loaded_by_the_workers_never_by_the_master(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, *GEVENT, workers=2)
    assert server.get("/import").status == 200
    for worker in server.wait_workers(2):
        assert maps_library(worker, "/gevent/"), f"worker {worker} runs without gevent?"
    # (greenlet alone, which structlog loads where it is installed, patches nothing.)
    assert not maps_library(server.pid, "/gevent/"), "the master loaded gevent"
    assert server.stop() == 0, server.errlog()


def test_gevent_runs_200_waiting_requests_at_once_in_one_worker(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, *GEVENT, workers=1)
    started = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(lambda _: server.get("/sleep?s=1", timeout=60).body, range(200)))
    elapsed = time.monotonic() - started
    assert answers == [b"slept"] * 200
    # One at a time they would take 200 s; side by side, about one.
    assert elapsed < 30, f"200 requests of 1 s took {elapsed:.1f} s in one worker"
    assert server.stop() == 0, server.errlog()


def test_gevent_and_preload_app_are_refused_with_the_reason(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, *GEVENT, "--preload", start=False)
    served = server.wait_exit(timeout=30)
    checked = server.check(*GEVENT, "--preload")
    assert served == checked.returncode == ExitCode.CONFIG, (served, checked)
    for message in (checked.stderr, server.errlog()):
        assert "worker_class gevent and preload_app cannot be combined" in message, message
        assert "never monkey-patched" in message, message


def test_gevent_reports_a_blocked_hub_with_its_stack_before_the_heartbeat_kills(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, *GEVENT, "--timeout", "4", workers=1)
    (worker,) = server.wait_workers(1)
    with ThreadPoolExecutor(1) as pool:
        # The worker is killed while spinning: the client sees the connection end.
        pool.submit(lambda: server.get("/spin?s=30", timeout=60))
        log = server.wait_log("worker.hub_blocked", timeout=20)
        blocked = log[log.index("worker.hub_blocked") :]  # the event, its stack on lines after
        assert "in _spin" in blocked and "cooperative_app.py" in blocked, blocked
        deadline = time.monotonic() + 30
        while server.worker_pids() in ([], [worker]):
            assert time.monotonic() < deadline, f"worker not replaced\n{server.errlog()}"
            time.sleep(0.05)
    log = server.errlog()
    assert log.index("worker.hub_blocked") < log.index("worker.timeout_dump"), log
    assert server.get("/sleep?s=0").body == b"slept"
    assert server.stop() == 0, server.errlog()


def test_gevent_says_its_requests_run_side_by_side(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, *GEVENT, workers=1)
    seen = json.loads(server.get("/environ").body)
    assert seen == {"wsgi.multithread": True, "wsgi.multiprocess": True}, seen
    assert server.stop() == 0, server.errlog()
