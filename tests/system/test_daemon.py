"""`--daemon`: the launching command returns only once the daemon answers, or has failed.

These run `wsgid -D` the way a shell script would, with its output captured through pipes: a
daemon that kept the pipes open would make `subprocess.run` hang, which the timeouts catch.
Every daemon carries a unique process name, so the cleanup finds it whatever happened.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import procs
from support.server import WorkDir, WsgidServer, free_port
from wsgid.exitcodes import ExitCode

SLOW = 1.5
SYSTEM_APPS = Path(__file__).resolve().parent / "apps"


def launch(
    workdir: WorkDir, name: str, app: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run `wsgid -D` to completion; (result, seconds it took, port)."""
    port = free_port()
    environ = WsgidServer(None, workdir=workdir).environ()
    environ.update(env or {})
    argv = [sys.executable, "-m", "wsgid", app, "--daemon", "--name", name]
    argv += ["--bind", f"127.0.0.1:{port}", *args]
    started = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=workdir.cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started, port


def get(port: int, path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_daemon_exits_0_only_once_the_server_answers_and_term_stops_it(
    workdir: WorkDir, daemon_name: str
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    log = workdir.logs / "error.log"
    result, took, port = launch(
        workdir,
        daemon_name,
        "slow_import_app:app",
        "--workers",
        "2",
        "--pid",
        str(pidfile),
        "--error-logfile",
        str(log),
        env={"SLOW_IMPORT_SECONDS": str(SLOW)},
    )
    assert result.returncode == 0, result.stderr
    assert took >= SLOW, f"returned after {took:.2f}s, before the app could have been imported"
    assert get(port) == 200, "the server must answer as soon as the launcher returned"
    pid = int(pidfile.read_text())
    stat = procs.read_stat(pid)
    assert stat is not None and "wsgid: master" in procs.cmdline(pid)
    assert stat.session != os.getsid(0) and stat.session != pid, "not detached from our session"
    with open(f"/proc/{pid}/stat") as f:
        tty_nr = int(f.read().rpartition(")")[2].split()[4])
    assert tty_nr == 0, "the daemon has a controlling terminal"
    assert len(procs.children(pid)) == 2
    assert "master.ready" in log.read_text()
    assert os.readlink(f"/proc/{pid}/cwd") == str(workdir.cwd), "the daemon changed directory"

    os.kill(pid, signal.SIGTERM)
    assert not procs.wait_gone([pid], timeout=15), "TERM did not stop the daemon"
    assert not pidfile.exists()
    assert "master.stopped" in log.read_text()


def test_a_daemon_runs_under_umask_022_whatever_the_umask_setting(
    workdir: WorkDir, daemon_name: str
) -> None:
    """gunicorn's daemonize sets 022; its `umask` setting is for the socket files it binds.
    With its example config's `umask = 0` the app's files must not become world-writable."""
    pidfile = workdir.root / "wsgid.pid"
    previous = os.umask(0o077)  # not what the daemon keeps
    try:
        result, _took, port = launch(
            workdir,
            daemon_name,
            "breakable_app:app",
            "--umask",
            "0",
            "--pid",
            str(pidfile),
            env={"PYTHONPATH": str(SYSTEM_APPS)},
        )
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        assert json.loads(conn.getresponse().read())["umask"] == 0o022
    finally:
        conn.close()
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    assert not procs.wait_gone([pid], timeout=15), "TERM did not stop the daemon"


def test_daemon_with_a_broken_app_exits_nonzero_and_prints_the_loader_error(
    workdir: WorkDir, daemon_name: str
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    result, _took, port = launch(
        workdir, daemon_name, "broken_import_app:app", "--pid", str(pidfile)
    )
    assert result.returncode == ExitCode.APP_LOAD_FAILED, (result.returncode, result.stderr)
    assert "No module named 'wsgid_test_missing_dependency'" in result.stderr, result.stderr
    assert "broken_import_app" in result.stderr
    assert "the application could not be loaded" in result.stderr
    assert not pidfile.exists()
    with pytest.raises(OSError):
        get(port)


def test_daemon_with_an_unbindable_address_reports_it_even_with_a_log_file(
    workdir: WorkDir, daemon_name: str
) -> None:
    log = workdir.logs / "error.log"
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    try:
        result, _took, _port = launch(
            workdir,
            daemon_name,
            "sleep_app:app",
            "--bind",
            f"127.0.0.1:{busy}",
            "--error-logfile",
            str(log),
        )
    finally:
        blocker.close()
    assert result.returncode == ExitCode.LISTEN_FAILED, (result.returncode, result.stderr)
    assert f"127.0.0.1:{busy}" in result.stderr and "details in the error log" in result.stderr


def test_daemon_keeps_stderr_redirected_to_a_file(workdir: WorkDir, daemon_name: str) -> None:
    """`wsgid -D ... 2>>file` keeps logging into that file after the detach."""
    port = free_port()
    out = workdir.logs / "redirected.log"
    environ = WsgidServer(None, workdir=workdir).environ()
    argv = [sys.executable, "-m", "wsgid", "sleep_app:app", "-D", "-n", daemon_name]
    argv += ["-b", f"127.0.0.1:{port}", "--access-logfile", "-"]
    with open(out, "ab") as sink:
        code = subprocess.call(
            argv, cwd=workdir.cwd, env=environ, stdout=sink, stderr=sink, timeout=60
        )
    assert code == 0
    assert get(port, "/pid?hello") == 200
    text = ""
    deadline = time.monotonic() + 5
    while "GET /pid?hello" not in text and time.monotonic() < deadline:
        text = out.read_text()
        time.sleep(0.05)
    assert "master.ready" in text and "GET /pid?hello" in text, text
    master = [st.pid for st in procs.all_stats() if daemon_name in procs.cmdline(st.pid)]
    masters = [p for p in master if "master" in procs.cmdline(p)]
    assert len(masters) == 1
    os.kill(masters[0], signal.SIGTERM)
    assert not procs.wait_gone(masters, timeout=15)


def test_enable_stdio_inheritance_keeps_a_pipe_as_the_daemons_stderr(
    workdir: WorkDir, daemon_name: str
) -> None:
    """`wsgid -D -R 2>&1 | reader`: the daemon's log reaches the pipe after the detach.

    Without -R the daemon drops a pipe (the other tests here read theirs to the end).
    """
    port = free_port()
    environ = WsgidServer(None, workdir=workdir).environ()
    argv = [sys.executable, "-m", "wsgid", "sleep_app:app", "-D", "-R", "-n", daemon_name]
    argv += ["-b", f"127.0.0.1:{port}", "--access-logfile", "-"]
    launcher = subprocess.Popen(
        argv,
        cwd=workdir.cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert launcher.stdout is not None
    try:
        assert launcher.wait(timeout=60) == 0, "the launcher did not report the daemon ready"
        assert get(port, "/pid?through-the-pipe") == 200
        os.set_blocking(launcher.stdout.fileno(), False)
        text = b""
        deadline = time.monotonic() + 5
        while b"GET /pid?through-the-pipe" not in text and time.monotonic() < deadline:
            text += launcher.stdout.read() or b""
            time.sleep(0.05)
        assert b"master.ready" in text and b"GET /pid?through-the-pipe" in text, text
    finally:
        masters = [
            st.pid
            for st in procs.all_stats()
            if daemon_name in procs.cmdline(st.pid) and "master" in procs.cmdline(st.pid)
        ]
        for pid in masters:
            os.kill(pid, signal.SIGTERM)
        assert not procs.wait_gone(masters, timeout=15)
        launcher.stdout.close()


def test_upgrade_of_a_daemon_keeps_one_daemon_and_hands_over_the_pidfile(
    workdir: WorkDir, daemon_name: str
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    result, _took, port = launch(workdir, daemon_name, "sleep_app:app", "--pid", str(pidfile))
    assert result.returncode == 0, result.stderr
    old = int(pidfile.read_text())
    os.kill(old, signal.SIGUSR2)
    pid2 = Path(str(pidfile) + ".2")
    deadline = time.monotonic() + 30
    while not pid2.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid2.exists(), "no new master"
    new = int(pid2.read_text())
    stat = procs.read_stat(new)
    assert stat is not None and stat.ppid == old, "the new master must not daemonize again"
    os.kill(old, signal.SIGTERM)
    assert not procs.wait_gone([old], timeout=15)
    deadline = time.monotonic() + 10
    while pid2.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(pidfile.read_text()) == new
    assert get(port, "/pid") == 200
    os.kill(new, signal.SIGTERM)
    assert not procs.wait_gone([new], timeout=15)
    assert not pidfile.exists()
