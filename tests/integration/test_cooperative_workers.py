"""The cooperative worker kinds (`-k gevent`, `-k eventlet`): what is their own, apart from
the suites every kind runs.

The conformance, hardening, TLS, PROXY protocol and metrics suites run over every kind of
`wsgid.workers.KINDS`, these included. Here, each test on both kinds, with
`cooperative_app` (tests/apps):

- the worker is monkey-patched before the app is imported: the app sees the library's
  socket, ssl, threading and time, its locks and thread-locals, and a subclass of
  `ssl.SSLContext` it made at import works (no RecursionError, gunicorn#1559); the thread
  pool module whose pre-patch lock hung gunicorn's gevent workers (gunicorn#3482) holds
  the library's lock (what else the worker inherited from the master is listed in
  docs/architecture.md, "The cooperative workers");
- the master never loads the library: its memory maps and modules have none of it;
- one worker runs many requests that wait at once (200 of 1 s each end together);
- `preload_app` is refused by `wsgid check` and at start, with the reason;
- a request that waits longer than `timeout` (a long poll) is served in full: only
  `request_timeout`, off by default, bounds it (tests/hardening/test_gthread_timeout.py sets
  it);
- a hub blocked by CPU-bound code is reported with the blocking code's stack before the
  heartbeat timeout replaces the worker;
- `wsgi.multithread` is true, `wsgi.multiprocess` is whether there are other workers;
- gevent on the io_uring backend (`GEVENT_BACKEND=linux_iouring,epoll`, which the docs
  advise for short timed waits) serves;
- eventlet: the master warns once that it is deprecated upstream, the workers do not.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.server import WsgidServer
from wsgid.exitcodes import ExitCode

APP = "cooperative_app:app"
KINDS = ("gevent", "eventlet")
cooperative = pytest.mark.parametrize("kind", KINDS)


def maps_library(pid: int, name: str) -> bool:
    """Whether process `pid` has a file whose path contains `name` mapped (gevent's
    compiled modules, greenlet's)."""
    return name in Path(f"/proc/{pid}/maps").read_text()


def opened_source(pid: int, name: str) -> bool:
    """Whether process `pid` has a module of package `name` imported, as far as /proc
    shows: eventlet is pure Python, so it is looked for in the process's memory."""
    pattern = f"/{name}/__init__.py".encode()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            anonymous = len(fields) < 6 or fields[5] == "[heap]"
            if fields[1].startswith("rw") and anonymous:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                try:
                    mem.seek(start)
                    if pattern in mem.read(end - start):
                        return True
                except OSError:
                    continue
    return False


@cooperative
def test_cooperative_kind_patches_the_worker_before_the_app_is_imported(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, "-k", kind, workers=1)
    seen = json.loads(server.get("/import").body)
    assert seen["library"] == kind, seen
    assert seen["patched"] == {"socket": True, "ssl": True, "threading": True, "time": True}
    # the library's classes (their modules' names vary: gevent._gevent_clocal, eventlet.lock)
    assert seen["lock"].startswith(kind) and seen["local"].startswith(kind), seen
    assert seen["futures_lock"].startswith(kind), seen  # imported after it (gunicorn#3482)
    answer = server.get("/ssl")  # an ssl.SSLContext subclass made at the app's import
    assert (answer.status, answer.body) == (200, b"ssl ok"), server.errlog()
    assert "RecursionError" not in server.errlog()
    assert server.stop() == 0, server.errlog()


@cooperative
def test_cooperative_library_is_loaded_by_the_workers_never_by_the_master(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    # gevent's compiled modules show in the memory maps; eventlet, pure Python, by the
    # path of its package in the process's memory.
    loaded = maps_library if kind == "gevent" else opened_source
    server = wsgid(APP, "-k", kind, workers=2)
    assert server.get("/import").status == 200
    for worker in server.wait_workers(2):
        assert loaded(worker, f"{kind}"), f"worker {worker} runs without {kind}?"
    # (greenlet alone, which structlog loads where it is installed, patches nothing.)
    assert not loaded(server.pid, f"{kind}"), f"the master loaded {kind}"
    assert server.stop() == 0, server.errlog()


@cooperative
def test_cooperative_kind_runs_200_waiting_requests_at_once_in_one_worker(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, "-k", kind, workers=1)
    started = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(lambda _: server.get("/sleep?s=1", timeout=60).body, range(200)))
    elapsed = time.monotonic() - started
    assert answers == [b"slept"] * 200
    # One at a time they would take 200 s; side by side, about one.
    assert elapsed < 30, f"200 requests of 1 s took {elapsed:.1f} s in one worker"
    assert server.stop() == 0, server.errlog()


@cooperative
def test_cooperative_kind_and_preload_app_are_refused_with_the_reason(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, "-k", kind, "--preload", start=False)
    served = server.wait_exit(timeout=30)
    checked = server.check("-k", kind, "--preload")
    assert served == checked.returncode == ExitCode.CONFIG, (served, checked)
    for message in (checked.stderr, server.errlog()):
        assert f"worker_class {kind} and preload_app cannot be combined" in message, message
        assert "never monkey-patched" in message, message


@cooperative
def test_cooperative_kind_serves_a_long_poll_past_timeout_when_request_timeout_is_off(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, "-k", kind, "--timeout", "2", workers=1)
    (worker,) = server.wait_workers(1)
    answer = server.get("/sleep?s=5", timeout=30)  # more than twice `timeout`
    assert (answer.status, answer.body) == (200, b"slept"), server.errlog()
    log = server.errlog()
    assert "worker.request_timeout" not in log and "worker.timeout" not in log, log
    assert server.worker_pids() == [worker]
    assert server.stop() == 0, server.errlog()


def test_gevent_reports_one_block_once_with_an_agent_thread_running(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """gevent's monitor, reporting a block, reprs the app's (patched) threads and so makes a
    hub in its own thread; that hub must not get a monitor of its own, which would report the
    first one, asleep, as a blocked hub every second for the worker's life."""
    script = Path(sys.executable).with_name("wsgid")  # the console script, as users run it

    def command(port: int) -> list[str]:
        return [str(script), APP, "-k", "gevent", "--timeout", "30", "--workers", "1",
                "--bind", f"127.0.0.1:{port}"]  # fmt: skip

    server = wsgid(None, command=command, env={"TESTAPP_BACKGROUND_THREAD": "1"})
    assert server.get("/spin?s=3", timeout=30).body == b"spun"
    server.wait_log("worker.hub_blocked", timeout=20)
    time.sleep(4)  # the span over which more reports would come: one a second
    log = server.errlog()
    assert log.count("worker.hub_blocked") == 1, log
    assert server.stop() == 0, server.errlog()


@cooperative
def test_cooperative_kind_reports_a_blocked_hub_with_its_stack_before_the_heartbeat_kills(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(APP, "-k", kind, "--timeout", "4", workers=1)
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
    assert log.count("worker.hub_blocked") == 1, log  # one block, one report
    assert server.get("/sleep?s=0").body == b"slept"
    assert server.stop() == 0, server.errlog()


@cooperative
@pytest.mark.parametrize("workers", [1, 2])
def test_cooperative_kind_says_its_requests_run_side_by_side(
    wsgid: Callable[..., WsgidServer], kind: str, workers: int
) -> None:
    server = wsgid(APP, "-k", kind, workers=workers)
    seen = json.loads(server.get("/environ").body)
    # multiprocess: whether other workers run the app too (gunicorn's rule: workers > 1).
    assert seen == {"wsgi.multithread": True, "wsgi.multiprocess": workers > 1}, seen
    assert server.stop() == 0, server.errlog()


def io_uring_allowed() -> bool:
    """Whether a process here may make an io_uring: asked of the kernel itself (the sysctl, a
    container's seccomp filter or an old kernel may each refuse it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(425, 1, params)  # io_uring_setup(entries=1, params), x86-64 and arm64
    if fd < 0:
        return False
    os.close(fd)
    return True


def test_gevent_runs_on_the_io_uring_backend_documented_for_timed_waits(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """docs/worker-kinds.md advises `GEVENT_BACKEND=linux_iouring,epoll` for apps whose requests
    wait on short timers: the worker's hub runs on io_uring where the kernel allows it, on
    epoll where not, and serves either way."""
    env = {"GEVENT_BACKEND": "linux_iouring,epoll"}
    server = wsgid(APP, "-k", "gevent", workers=1, env=env)
    (worker,) = server.wait_workers(1)
    answers = [server.get("/sleep?s=0.01") for _ in range(20)]
    assert [(a.status, a.body) for a in answers] == [(200, b"slept")] * 20, server.errlog()
    kinds = {os.readlink(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")}
    expected = "anon_inode:[io_uring]" if io_uring_allowed() else "anon_inode:[eventpoll]"
    assert expected in kinds, kinds
    assert server.stop() == 0, server.errlog()


def test_eventlet_is_said_deprecated_once_by_the_master(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, "-k", "eventlet", workers=2)
    server.wait_workers(2)
    assert server.get("/import").status == 200
    assert server.stop() == 0, server.errlog()
    log = server.errlog()
    assert log.count("worker_class.deprecated") == 1, log
    assert "move to -k gevent" in log, log
    # eventlet's own import warning, which each worker would print, is not there.
    assert "Eventlet is deprecated" not in log + server.outlog(), log
