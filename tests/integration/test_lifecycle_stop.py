"""Graceful stop with slow requests in flight: they finish, nothing new gets in, exit 0.

Three workers each run a 2 s request when TERM arrives. All three must complete with 200;
meanwhile a new connection must be refused (the server stops accepting at once, not when
the busy workers next look at their listeners); the master exits 0 within graceful_timeout.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from support.client import poll
from support.load import events
from support.server import Response, WorkDir, WsgidServer

APP = "lifecycle_app:app"
GRACEFUL = 10.0
SLOW = 2.0


def started_pid(workdir: WorkDir, tag: str) -> int:
    """Wait until the request tagged `tag` runs in the app; the pid of its worker."""
    marker = workdir.markers / f"started-{tag}"
    poll(lambda: marker.exists() and marker.read_text(), timeout=20, what=f"request {tag}")
    return int(marker.read_text())


def connection_refused(port: int) -> bool:
    """True if connect() is refused; a connection that gets in is closed again at once."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except ConnectionRefusedError:
        return True
    sock.close()
    return False


def test_term_with_three_slow_requests_finishes_them_refuses_new_and_exits_0(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "--graceful-timeout", str(GRACEFUL), workers=3)
    workers = set(server.wait_workers(3))
    with ThreadPoolExecutor(max_workers=3) as pool:
        # One after the other, so that each lands on an idle worker: three different workers.
        in_flight: list[Future[Response]] = []
        ran_on = set()
        for i in range(3):
            in_flight.append(pool.submit(server.get, f"/sleep?s={SLOW}&tag=slow{i}", timeout=60))
            ran_on.add(started_pid(workdir, f"slow{i}"))
        assert ran_on == workers
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)

        # While the three run (the first ends about SLOW s after it started), connect() fails.
        accepted_after_term = 0
        while not connection_refused(server.port):
            accepted_after_term += 1
            if any(f.done() for f in in_flight):
                break
            time.sleep(0.02)
        refused_at = time.monotonic() - sent
        still_running = sum(not f.done() for f in in_flight)

        rc = server.wait_exit(timeout=GRACEFUL + 10)
        took = time.monotonic() - sent
        answers = [f.result(timeout=10) for f in in_flight]
    log = server.errlog()
    assert [a.status for a in answers] == [200, 200, 200], log
    assert all(a.json()["path"] == "/sleep" for a in answers)  # type: ignore[index]
    assert still_running == 3, (
        f"new connections were still accepted {refused_at:.2f}s after TERM "
        f"({accepted_after_term} connects got in) until the slow requests ended\n{log}"
    )
    assert rc == 0, log
    assert took <= GRACEFUL, f"exit {took:.2f}s after TERM, graceful_timeout is {GRACEFUL}s"
    assert events(log, "master.stopping", signal="SIGTERM", graceful=True), log


def test_an_idle_worker_stops_at_once_on_term_though_its_loop_is_compiled(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """The master's TERM reaches a worker while its loop works (the closed listener wakes it
    too): with nothing interpreted on the compiled loop's path, the Python handler must
    still run, at the wake-up the signal wrote (workers/interpreted.py), not seconds later
    at the master's kill."""
    server = wsgid(APP, workers=2)
    for _ in range(5):
        assert server.get("/pid").status == 200
    stopped_at = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=GRACEFUL) == 0
    assert time.monotonic() - stopped_at < 3.0
    log = server.errlog()
    assert len(events(log, "worker.stopping")) == 2, log
    assert not events(log, "worker.killed"), log
