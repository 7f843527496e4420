"""One test per signal to the master (and the worker-side signals), against real processes.

Each test sends the signal and asserts what an operator can observe: the worker pids and
their count (from /proc), the events in the error log, the pidfile, and the answers the
server gives. Nothing sleeps for a fixed time: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from support import procs
from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.load import (
    events,
    exactly_children,
    listening_inodes,
    pidfile_pid,
    same,
    socket_inodes,
    stop_process,
    wait_event,
    wait_pidfile,
)
from support.server import Response, WorkDir, WsgidServer

APP = "lifecycle_app:app"


def in_flight(
    pool: ThreadPoolExecutor, server: WsgidServer, workdir: WorkDir, seconds: float, tag: str
) -> tuple[Future[Response], int]:
    """Start a `/sleep` request; return its future once it runs in the app, and the worker pid."""
    fut = pool.submit(server.get, f"/sleep?s={seconds}&tag={tag}", timeout=seconds + 30)
    return fut, _started_pid(workdir, tag)


def _started_pid(workdir: WorkDir, tag: str) -> int:
    """Wait for the request tagged `tag` to reach the app; the pid of the worker running it."""
    marker = workdir.markers / f"started-{tag}"
    poll(lambda: marker.exists() and marker.read_text(), timeout=20, what=f"request {tag}")
    return int(marker.read_text())


def replaced(server: WsgidServer, gone: set[int], count: int) -> Callable[[], list[int]]:
    """A poll condition: `count` workers run and none of them is in `gone`."""

    def check() -> list[int]:
        server.check_running()
        pids = server.worker_pids()
        return pids if len(pids) == count and not gone & set(pids) else []

    return check


# --------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["TERM", "QUIT"])
def test_term_and_quit_stop_gracefully_finish_request_exit_0_and_remove_pidfile(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sig: signal.Signals
) -> None:
    pid_path = workdir.root / "wsgid.pid"
    server = wsgid(APP, "--pid", str(pid_path), "--graceful-timeout", "30", workers=2)
    workers = server.wait_workers(2)
    assert pidfile_pid(pid_path) == server.pid
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut, _ = in_flight(pool, server, workdir, 2, "graceful")
        server.send_signal(sig)
        rc = server.wait_exit(timeout=30)
        resp = fut.result(timeout=10)
    log = server.errlog()
    assert resp.status == 200, resp.text
    assert resp.json()["path"] == "/sleep"  # type: ignore[index]
    assert rc == 0, log
    stopping = events(log, "master.stopping", signal=sig.name)
    assert len(stopping) == 1 and same(stopping[0].get("graceful"), True), log
    assert events(log, "master.stopped", exit_code=0), log
    assert procs.wait_gone(workers, timeout=2) == [], "workers outlived the master"
    assert not pid_path.exists(), "the pidfile must be removed on a clean stop"


def test_int_stops_fast_without_waiting_for_the_in_flight_request(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "--graceful-timeout", "60", workers=2)
    workers = server.wait_workers(2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut, _ = in_flight(pool, server, workdir, 60, "fast")
        sent = time.monotonic()
        server.send_signal(signal.SIGINT)
        rc = server.wait_exit(timeout=15)
        took = time.monotonic() - sent
        outcome = fut.exception(timeout=15) or fut.result()
    log = server.errlog()
    assert rc == 0, log
    assert took < 5.0, f"a fast stop took {took:.2f}s\n{log}"
    # The request was cut: the client saw the connection end, not a 200 after 60 s.
    assert not isinstance(outcome, Response) or outcome.status != 200, outcome
    stopping = events(log, "master.stopping", signal="SIGINT")
    assert len(stopping) == 1 and same(stopping[0].get("graceful"), False), log
    assert procs.wait_gone(workers, timeout=2) == []


def test_second_term_during_graceful_stop_makes_it_fast(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "--graceful-timeout", "60", workers=1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut, _ = in_flight(pool, server, workdir, 60, "second")
        server.send_signal(signal.SIGTERM)
        wait_event(server.errlog, "master.stopping", graceful=True, signal="SIGTERM")
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rc = server.wait_exit(timeout=15)
        took = time.monotonic() - sent
        fut.exception(timeout=15)
    log = server.errlog()
    assert rc == 0, log
    assert took < 5.0, f"the second TERM did not make the stop fast ({took:.2f}s)\n{log}"
    graceful = [e.get("graceful") for e in events(log, "master.stopping")]
    assert len(graceful) == 2 and same(graceful[0], True) and same(graceful[1], False), log


# --------------------------------------------------------------------------- reload, count


def test_hup_replaces_every_worker_and_keeps_the_master(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, workers=2)
    old = set(server.wait_workers(2))
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", generation=2, timeout=20, check=server.check_running)
    new = poll(replaced(server, old, 2), timeout=20, what="the old generation to exit")
    assert procs.wait_gone(sorted(old), timeout=5) == []
    log = server.errlog()
    assert events(log, "reload.started", generation=2, workers=2), log
    served = {server.get("/pid").json()["pid"] for _ in range(20)}  # type: ignore[index]
    assert served <= set(new), f"served by {served}, workers are {new}"


def test_ttin_adds_one_worker(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, workers=2)
    old = server.wait_workers(2)
    server.send_signal(signal.SIGTTIN)
    now = server.wait_workers(3, timeout=20)
    assert set(old) < set(now), "TTIN must add a worker, not replace the others"
    wait_event(server.errlog, "master.workers_changed", workers=3, was=2, signal="SIGTTIN")
    assert server.get("/pid").status == 200


def test_ttou_removes_one_worker_but_never_the_last(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, workers=2)
    old = server.wait_workers(2)
    server.send_signal(signal.SIGTTOU)
    (left,) = server.wait_workers(1, timeout=20)
    assert left in old
    wait_event(server.errlog, "master.workers_changed", workers=1, was=2, signal="SIGTTOU")
    # At one worker TTOU changes nothing (and says so): the TTIN after it starts from 1, not 0.
    # Sent only once the TTOU was handled: two signals pending together are handled in
    # signal-number order, TTIN first.
    server.send_signal(signal.SIGTTOU)
    wait_event(server.errlog, "master.workers_unchanged", workers=1, signal="SIGTTOU")
    server.send_signal(signal.SIGTTIN)
    wait_event(server.errlog, "master.workers_changed", workers=2, was=1, signal="SIGTTIN")
    pids = server.wait_workers(2, timeout=20)
    assert left in pids
    assert not events(server.errlog(), "master.workers_changed", workers=0)


def test_winch_stops_every_worker_but_keeps_the_master_until_hup(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, workers=2)
    old = server.wait_workers(2)
    server.send_signal(signal.SIGWINCH)
    server.wait_workers(0, timeout=20)
    assert procs.wait_gone(old, timeout=5) == []
    wait_event(server.errlog, "master.winch")
    server.check_running()
    # HUP brings workers back (the rollback path of an upgrade).
    server.send_signal(signal.SIGHUP)
    new = server.wait_workers(2, timeout=20)
    assert not set(new) & set(old)
    assert server.get("/pid").status == 200


# --------------------------------------------------------------------------- children


def test_sigkill_of_a_worker_is_reaped_logged_and_replaced(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """CHLD: the master reaps the worker, says how it ended, and starts a replacement."""
    server = wsgid(APP, workers=2)
    victim, other = server.wait_workers(2)
    os.kill(victim, signal.SIGKILL)
    now = poll(replaced(server, {victim}, 2), timeout=20, what="a replacement worker")
    assert other in now
    wait_event(server.errlog, "worker.exited", worker=victim, status="killed by SIGKILL")
    for _ in range(5):
        assert server.get("/pid").status == 200


def test_worker_term_finishes_its_request_then_exits_and_is_replaced(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "--graceful-timeout", "30", workers=2)
    server.wait_workers(2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut, worker = in_flight(pool, server, workdir, 2, "worker-term")
        os.kill(worker, signal.SIGTERM)
        resp = fut.result(timeout=30)
    assert resp.status == 200 and resp.json()["pid"] == worker  # type: ignore[index]
    wait_event(server.errlog, "worker.exited", worker=worker, status="exit 0", timeout=20)
    poll(replaced(server, {worker}, 2), timeout=20, what="a replacement worker")


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT], ids=["QUIT", "INT"])
def test_worker_quit_and_int_exit_at_once_and_are_replaced(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sig: signal.Signals
) -> None:
    server = wsgid(APP, "--graceful-timeout", "60", workers=2)
    server.wait_workers(2)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut, worker = in_flight(pool, server, workdir, 60, "worker-quit")
        sent = time.monotonic()
        os.kill(worker, sig)
        assert procs.wait_gone([worker], timeout=10) == []
        took = time.monotonic() - sent
        fut.exception(timeout=15)
    assert took < 5.0, f"worker took {took:.2f}s to exit on {sig.name}"
    poll(replaced(server, {worker}, 2), timeout=20, what="a replacement worker")
    assert server.get("/pid").status == 200


# --------------------------------------------------------------------------- logs


def occupy(
    pool: ThreadPoolExecutor,
    server: WsgidServer,
    workdir: WorkDir,
    n: int,
    seconds: float,
    prefix: str,
    log: str = "",
) -> list[tuple[Future[Response], int]]:
    """`n` `/sleep` requests in flight at once, each started after the previous reached the app.

    A sync worker busy in the app accepts nothing, so with `n` idle workers the requests land
    on `n` different workers: this is how a test reaches every worker deterministically.
    """
    extra = f"&log={log}" if log else ""
    started = []
    for i in range(n):
        tag = f"{prefix}-{i}"
        fut = pool.submit(server.get, f"/sleep?s={seconds}&tag={tag}{extra}", timeout=60)
        started.append((fut, _started_pid(workdir, tag)))
    return started


def _text(path: Path) -> Callable[[], str]:
    return lambda: path.read_text() if path.exists() else ""


def test_usr1_reopens_the_log_files_in_master_and_workers(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    error_log = workdir.logs / "error.log"
    access_log = workdir.logs / "access.log"
    server = wsgid(
        APP, "--error-logfile", str(error_log), "--access-logfile", str(access_log), workers=2
    )
    workers = set(server.wait_workers(2))
    rotated_error = error_log.with_suffix(".log.1")
    rotated_access = access_log.with_suffix(".log.1")
    error_log.rename(rotated_error)  # what logrotate does before it signals
    access_log.rename(rotated_access)
    server.send_signal(signal.SIGUSR1)
    wait_event(_text(rotated_error), "master.reopen_logs", check=server.check_running)

    # Access log: one request served by each worker; every line lands in the new file.
    old_access = rotated_access.read_text()

    def each_worker_logs_to_new_access_file() -> bool:
        with ThreadPoolExecutor(max_workers=2) as pool:
            started = occupy(pool, server, workdir, 2, 0.5, f"acc{uuid.uuid4().hex[:8]}")
            answers = [fut.result(timeout=30) for fut, _ in started]
        assert {pid for _, pid in started} == workers
        assert [a.status for a in answers] == [200, 200]
        return _text(access_log)().count("/sleep?") >= 2

    poll(each_worker_logs_to_new_access_file, timeout=30, what="access lines in the new file")
    assert rotated_access.read_text() == old_access, "a worker still writes the old access log"

    # Error log: WINCH makes the master and each worker log; all of it goes to the new file.
    server.send_signal(signal.SIGWINCH)
    wait_event(_text(error_log), "master.winch", check=server.check_running)
    for pid in workers:
        wait_event(_text(error_log), "worker.stopping", pid=pid, check=server.check_running)
    assert not events(rotated_error.read_text(), "worker.stopping")


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_usr1_leaves_every_kind_serving(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    # The reopen runs from the wake-up pipe; eventlet's patched os.read, called on it once
    # too often, waited in the hub for good.
    error_log = workdir.logs / "error.log"
    server = wsgid(APP, *kind_args(kind), "--error-logfile", str(error_log), workers=1)
    assert server.get("/").status == 200
    server.send_signal(signal.SIGUSR1)
    wait_event(_text(error_log), "master.reopen_logs", check=server.check_running)
    for _ in range(5):
        assert server.get("/", timeout=10).status == 200, error_log.read_text()
    assert "worker.hub_blocked" not in error_log.read_text()
    assert server.stop() == 0, error_log.read_text()


def test_usr1_wsgi_errors_of_the_app_follows_the_reopened_error_log(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """`environ["wsgi.errors"]` is the error log: after USR1 it must write to the new file."""
    error_log = workdir.logs / "error.log"
    server = wsgid(APP, "--error-logfile", str(error_log), workers=2)
    workers = set(server.wait_workers(2))
    error_log.rename(error_log.with_suffix(".log.1"))
    server.send_signal(signal.SIGUSR1)
    wait_event(_text(error_log.with_suffix(".log.1")), "master.reopen_logs")
    msg = uuid.uuid4().hex

    def both_workers_wrote() -> bool:
        with ThreadPoolExecutor(max_workers=2) as pool:
            started = occupy(pool, server, workdir, 2, 0.2, f"err{uuid.uuid4().hex[:8]}", msg)
            answers = [fut.result(timeout=30) for fut, _ in started]
        assert {pid for _, pid in started} == workers
        for answer in answers:
            assert answer.status == 200, f"wsgi.errors failed after USR1:\n{_text(error_log)()}"
        text = _text(error_log)()
        return all(f"lifecycle-log {msg} pid={pid}" in text for pid in workers)

    poll(both_workers_wrote, timeout=30, what="wsgi.errors lines of both workers in the new file")


# --------------------------------------------------------------------------- upgrade


def test_usr2_starts_a_new_master_on_the_same_socket_and_the_old_keeps_serving(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pid_path = workdir.root / "wsgid.pid"
    pid2_path = workdir.root / "wsgid.pid.2"
    server = wsgid(APP, "--pid", str(pid_path), workers=2)
    old_workers = set(server.wait_workers(2))
    (listener,) = listening_inodes(server.port)
    server.send_signal(signal.SIGUSR2)
    new_master = wait_pidfile(pid2_path, timeout=20)
    assert new_master in procs.children(server.pid), "the new master is forked by the old one"
    wait_event(server.errlog, "upgrade.started", new_master=new_master)
    wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
    new_workers = set(poll(exactly_children(new_master, 2), 20, what="the new workers"))
    assert pidfile_pid(pid_path) == server.pid, "the old master keeps NAME.pid"
    assert all(procs.is_alive(p) for p in old_workers), "the old workers keep running"
    # One listening socket, inherited (not re-bound): the new master holds the same inode.
    assert listening_inodes(server.port) == [listener]
    assert listener in socket_inodes(new_master)

    # Both generations accept from it: four requests in flight at once reach all four workers.
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = occupy(pool, server, workdir, 4, 1.0, "both")
        assert [fut.result(timeout=30).status for fut, _ in started] == [200] * 4
    assert {pid for _, pid in started} == old_workers | new_workers

    # Rollback: TERM the new master; the old one, untouched, keeps NAME.pid and serves.
    stop_process(new_master, signal.SIGTERM, 30, also=sorted(new_workers))
    assert not pid2_path.exists(), "the new master removes NAME.pid.2 when it exits"
    assert pidfile_pid(pid_path) == server.pid
    assert set(server.worker_pids()) == old_workers
    assert server.get("/pid").status == 200
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert not pid_path.exists()


def _pending_signals(pid: int) -> int:
    """The signals pending for `pid` (its own and its thread group's), as a bit mask."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        raise AssertionError(f"worker {pid} died instead of keeping the signal pending") from None
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)


def test_term_reaching_a_worker_before_its_handlers_are_set_stops_it_gracefully(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """A stop right after a spawn: the worker still runs the master's code (post_fork here).

    The master forks with the worker signals blocked, so the TERM it forwards waits, pending,
    until the worker's own handlers are in place, then stops it gracefully (exit 0). Before,
    the signal met the master's handlers (lost: a worker that ignored TERM until
    graceful_timeout) or the default action (killed).
    """
    config = workdir.root / "wsgid.toml"
    config.write_text('[hooks]\npost_fork = "hooks_gate:post_fork"\n')
    server = wsgid(APP, "--config", str(config), workers=1, start=False)
    (marker,) = poll(
        lambda: list(workdir.markers.glob("post_fork-*")), timeout=30, what="a worker in post_fork"
    )
    worker = int(marker.name.removeprefix("post_fork-"))
    server.send_signal(signal.SIGTERM)
    poll(
        lambda: _pending_signals(worker) & (1 << (signal.SIGTERM - 1)),
        timeout=10,
        what="TERM pending in the worker",
    )
    (workdir.markers / "go").touch()
    assert server.wait_exit(timeout=20) == 0, server.errlog()
    (exited,) = wait_event(server.errlog, "worker.exited", worker=worker)
    assert exited.get("status") == "exit 0", exited.line


# --- signals before the master serves ---------------------------------------------------------


def test_usr1_and_hup_while_a_preloaded_app_imports_are_handled_once_serving(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The pidfile exists from before the listeners are bound and a preloaded app imported:
    logrotate's USR1 or a deploy's HUP sent by it then must not end the master (the default
    action of both), as it did; they are queued and handled once the loop runs."""
    pid_path = workdir.root / "wsgid.pid"
    server = wsgid(
        "slow_import_app:app", "--preload", "--pid", str(pid_path),
        env={"SLOW_IMPORT_SECONDS": "1.5"}, start=False,
    )  # fmt: skip
    assert wait_pidfile(pid_path, timeout=30) == server.pid
    server.send_signal(signal.SIGUSR1)
    server.send_signal(signal.SIGHUP)
    server.wait_ready(30)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    assert server.get("/").status == 200
    assert server.stop() == 0, server.errlog()


def test_term_while_the_address_is_busy_ends_the_start_and_usr1_does_not(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """While the master retries a busy address, USR1 is queued (it ended the master), and a
    stop signal ends the start at once with exit 0 and the pidfile removed."""
    pid_path = workdir.root / "wsgid.pid"
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        server = wsgid(APP, "--pid", str(pid_path), "--bind", f"127.0.0.1:{port}", start=False)
        wait_event(server.errlog, "listener.busy", timeout=30)
        server.send_signal(signal.SIGUSR1)
        wait_event(server.errlog, "listener.busy", count=2, timeout=30)
        server.check_running()
        assert server.stop(signal.SIGTERM, timeout=10) == 0, server.errlog()
    assert events(server.errlog(), "master.stopped", signal="SIGTERM"), server.errlog()
    assert not pid_path.exists()
