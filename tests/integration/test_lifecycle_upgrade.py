"""The binary upgrade walkthrough of docs/signals.md, step by step, with real processes.

USR2 to the master forks and execs a new master that inherits the listening socket (the
same socket: same inode in /proc, never a second bind); WINCH to the old master retires its
workers; TERM to the old master ends it, and the new master takes over `NAME.pid`. The whole
walk runs under load (`support.load.LoadLoop`) and must not fail one request. The rollback
(HUP the old master, TERM the new one) is walked too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import procs
from support.client import poll
from support.load import (
    LoadLoop,
    exactly_children,
    listening_inodes,
    pidfile_pid,
    socket_inodes,
    stop_process,
    wait_event,
    wait_pidfile,
)
from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode

APP = "lifecycle_app:app"


@contextlib.contextmanager
def new_master_stopped_at_exit() -> Iterator[list[int]]:
    """Holds the new master's pid (appended by the test); TERMs it, KILLs it if need be."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            if procs.is_alive(pid):
                workers = procs.children(pid)
                with contextlib.suppress(AssertionError):
                    stop_process(pid, signal.SIGTERM, 30, also=workers)
                    continue
                for p in (pid, *workers):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)


def start_upgrade(server: WsgidServer, pid2_path: Path) -> tuple[int, set[int]]:
    """USR2; wait for the new master to write NAME.pid.2 and boot its workers."""
    server.send_signal(signal.SIGUSR2)
    new_master = wait_pidfile(pid2_path, timeout=30)
    wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
    workers = poll(exactly_children(new_master, 2), timeout=30, what="the new master's workers")
    return new_master, set(workers)


def test_usr2_winch_term_under_load_fails_nothing_moves_pidfile_keeps_socket(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pid_path = workdir.root / "wsgid.pid"
    pid2_path = workdir.root / "wsgid.pid.2"
    server = wsgid(APP, "--pid", str(pid_path), workers=2)
    old_master = server.pid
    old_workers = set(server.wait_workers(2))
    (listener,) = listening_inodes(server.port)
    assert listener in socket_inodes(old_master)
    assert pidfile_pid(pid_path) == old_master and not pid2_path.exists()

    with new_master_stopped_at_exit() as started, LoadLoop(server.port, fresh=2) as load:
        load.wait_served(100)

        # 1. USR2: a new master beside the old one, on the inherited socket.
        new_master, new_workers = start_upgrade(server, pid2_path)
        started.append(new_master)
        assert pidfile_pid(pid_path) == old_master, "NAME.pid stays the old master's"
        assert pidfile_pid(pid2_path) == new_master, "the new master writes NAME.pid.2"
        assert listening_inodes(server.port) == [listener], "the socket must not be re-bound"
        for pid in (new_master, *new_workers):
            assert listener in socket_inodes(pid), f"{pid} does not hold socket:[{listener}]"
        assert all(procs.is_alive(p) for p in old_workers)

        # 2. WINCH to the old master: its workers go, it stays; the new workers serve.
        server.send_signal(signal.SIGWINCH)
        assert procs.wait_gone(sorted(old_workers), timeout=30) == [], "old workers remain"
        server.check_running()
        assert procs.children(old_master) == [new_master]
        assert pidfile_pid(pid_path) == old_master and pidfile_pid(pid2_path) == new_master
        mark = time.monotonic()
        load.wait_served(100, since=mark)
        assert set(load.stats.pids(since=mark)) <= new_workers

        # 3. TERM to the old master: it exits 0; the new master takes over NAME.pid.
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        wait_event(server.errlog, "upgrade.old_master_exited", pid=new_master, timeout=15)
        poll(
            lambda: pidfile_pid(pid_path) == new_master and not pid2_path.exists(),
            timeout=15,
            what="NAME.pid.2 renamed to NAME.pid",
        )
        assert listening_inodes(server.port) == [listener]
        mark = time.monotonic()
        load.wait_served(100, since=mark)
        assert set(load.stats.pids(since=mark)) <= new_workers

    stats = load.stats
    assert not stats.failures, stats.summary() + "\n" + server.errlog()
    assert not procs.is_alive(new_master)
    assert not pid_path.exists(), "the new master removes NAME.pid when it stops"


@pytest.mark.parametrize("kind", ["sync", "gthread"])
def test_usr2_then_term_of_the_old_master_under_keep_alive_load_fails_nothing(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """gunicorn's own upgrade: USR2, then TERM to the old master (no WINCH). Its workers stop
    as retired ones: a request already sent over an idle keep-alive connection is answered
    (with Connection: close), not met by an empty EOF as in a stop of the whole server. The
    load's keep-alive clients retry nothing."""
    pid_path = workdir.root / "wsgid.pid"
    server = wsgid(APP, "--pid", str(pid_path), "-k", kind, workers=2)
    server.wait_workers(2)
    with (
        new_master_stopped_at_exit() as started,
        LoadLoop(server.port, keepalive=6, fresh=1) as load,
    ):
        load.wait_served(200)
        new_master, new_workers = start_upgrade(server, workdir.root / "wsgid.pid.2")
        started.append(new_master)
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        mark = time.monotonic()
        load.wait_served(200, since=mark)
        assert set(load.stats.pids(since=mark)) <= new_workers
    stats = load.stats
    assert not stats.failures, stats.summary() + "\n" + server.errlog()


def test_usr2_rollback_hup_old_master_then_term_new_master(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pid_path = workdir.root / "wsgid.pid"
    pid2_path = workdir.root / "wsgid.pid.2"
    server = wsgid(APP, "--pid", str(pid_path), workers=2)
    old_master = server.pid
    old_workers = set(server.wait_workers(2))
    (listener,) = listening_inodes(server.port)

    with new_master_stopped_at_exit() as started:
        new_master, new_workers = start_upgrade(server, pid2_path)
        started.append(new_master)
        server.send_signal(signal.SIGWINCH)
        assert procs.wait_gone(sorted(old_workers), timeout=30) == []

        # The new code misbehaves: HUP the old master (it starts workers again) ...
        server.send_signal(signal.SIGHUP)
        # (the old master's children: the new master and two new workers)
        respawned = set(poll(exactly_children(old_master, 3), 30, what="old workers back"))
        respawned.discard(new_master)
        assert not respawned & old_workers
        # ... and TERM the new master: it goes, removing NAME.pid.2 only.
        stop_process(new_master, signal.SIGTERM, 30, also=sorted(new_workers))

    assert not pid2_path.exists(), "the new master removes NAME.pid.2 when it stops"
    assert pidfile_pid(pid_path) == old_master, "NAME.pid is still the old master's"
    assert listening_inodes(server.port) == [listener]
    assert listener in socket_inodes(old_master)
    for _ in range(10):
        resp = server.get("/pid")
        assert resp.status == 200 and resp.json()["pid"] in respawned  # type: ignore[index]
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert not pid_path.exists()


@pytest.mark.parametrize(
    ("inherit_fds", "says"),
    [
        ("3:web:maybe", "_WSGID_INHERIT_FDS entry '3:web:maybe' is not FD:NAME:OWNED"),
        ("0::1", "_WSGID_INHERIT_FDS: fd 0 is not a socket"),  # stdin: /dev/null
    ],
)
def test_a_new_master_refuses_a_malformed_handoff_with_exit_5_naming_the_variable(
    wsgid: Callable[..., WsgidServer], inherit_fds: str, says: str
) -> None:
    env = {"_WSGID_INHERIT_FDS": inherit_fds, "_WSGID_OLD_MASTER": str(os.getpid())}
    server = wsgid(APP, workers=1, env=env, start=False)
    assert server.wait_exit(timeout=30) == ExitCode.LISTEN_FAILED
    err = server.errlog()
    assert "master.start_failed" in err and says in err, err
    assert "master.started" not in err, err


def unix_get_status(path: Path) -> int:
    """The status of a GET / over the unix socket at `path`."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return int(sock.makefile("rb").readline().split()[1])


def test_a_failed_upgrade_leaves_the_old_masters_unix_socket_file_in_place(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The new master's workers cannot import the app: it exits, and the old master serves
    on, through the socket files it bound too (the new one shared them, never created them)."""
    socket_path = workdir.root / "app.sock"
    server = wsgid(
        "exit_at_import_app:app", "-b", f"unix:{socket_path}",
        "--pid", str(workdir.root / "wsgid.pid"), workers=1,
    )  # fmt: skip
    server.wait_workers(1)
    assert unix_get_status(socket_path) == 200
    (workdir.markers / "exit-at-import").write_text("sys_exit_msg")
    server.send_signal(signal.SIGUSR2)
    wait_event(server.errlog, "upgrade.failed", timeout=60)
    assert socket_path.is_socket(), f"{socket_path} is gone:\n{server.errlog()}"
    assert unix_get_status(socket_path) == 200
    assert server.get("/").status == 200
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert not socket_path.exists(), "the old master removes its own socket file when it stops"
