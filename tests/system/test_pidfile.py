"""The pidfile: its lock, not the number in it, decides whether wsgid is already running.

A pidfile that cannot be created, or that another instance holds, stops wsgid with its own
exit status, 7 (docs/running.md), not 1, which means a bug.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support.server import WorkDir, WsgidServer, free_port
from wsgid.exitcodes import ExitCode


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_pidfile_holds_the_master_pid_mode_0644_and_is_removed_on_exit(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "run" / "wsgid.pid"
    pidfile.parent.mkdir()
    server = wsgid("sleep_app:app", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert sorted(p.name for p in pidfile.parent.iterdir()) == ["wsgid.pid"], "temp file left"
    assert server.stop(signal.SIGTERM) == 0
    assert not pidfile.exists()


def test_a_stale_pidfile_of_a_dead_process_does_not_block_a_start(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    pidfile.write_text(f"{dead_pid()}\n")
    server = wsgid("sleep_app:app", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert server.stop() == 0


def test_a_pid_reused_by_an_unrelated_process_does_not_block_a_start(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    # The file names a live process that is not wsgid (this test runner): the pid was reused.
    pidfile.write_text(f"{os.getpid()}\n")
    server = wsgid("sleep_app:app", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert server.stop() == 0


def test_a_live_instance_makes_a_second_start_refuse_clearly(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    first = wsgid("sleep_app:app", "--pid", str(pidfile))
    second = wsgid("sleep_app:app", "--pid", str(pidfile), start=False)
    assert second.wait_exit(timeout=30) == ExitCode.PIDFILE
    err = second.errlog()
    assert f"already running with pid {first.pid}" in err and str(pidfile) in err, err
    assert pidfile.read_text() == f"{first.pid}\n", "the refused start touched the pidfile"
    assert first.get("/pid").status == 200
    assert first.stop() == 0
    assert not pidfile.exists()


def test_a_symlinked_pidfile_is_refused_and_its_target_left_alone(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    target = workdir.root / "precious"
    target.write_text("do not overwrite\n")
    pidfile = workdir.root / "wsgid.pid"
    pidfile.symlink_to(target)
    server = wsgid("sleep_app:app", "--pid", str(pidfile), start=False)
    assert server.wait_exit(timeout=30) == ExitCode.PIDFILE
    assert "symbolic link" in server.errlog(), server.errlog()
    assert target.read_text() == "do not overwrite\n"
    assert pidfile.is_symlink()


def test_a_pidfile_left_by_a_killed_master_does_not_block_the_next_start(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    # A crash: the holder of the lock dies without removing the file.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'%d\\n' % os.getpid())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(pidfile),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        refused = wsgid("sleep_app:app", "--pid", str(pidfile), start=False)
        assert refused.wait_exit(timeout=30) == ExitCode.PIDFILE  # the holder is alive: refused
    finally:
        holder.kill()
        holder.wait()
    server = wsgid("sleep_app:app", "--pid", str(pidfile))
    assert Path(pidfile).read_text() == f"{server.pid}\n"
    assert server.stop() == 0


def test_a_pidfile_that_cannot_be_created_exits_7_naming_it(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    pidfile = workdir.root / "missing-directory" / "wsgid.pid"
    server = wsgid("sleep_app:app", "--pid", str(pidfile), start=False)
    assert server.wait_exit(timeout=30) == ExitCode.PIDFILE
    err = server.errlog()
    assert f"pidfile {pidfile}: cannot create it" in err, err
    assert "Traceback" not in err, err


def test_a_daemon_whose_pidfile_another_instance_holds_exits_7_and_says_why(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, daemon_name: str
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    first = wsgid("sleep_app:app", "--pid", str(pidfile))
    argv = [sys.executable, "-m", "wsgid", "sleep_app:app", "--daemon", "--name", daemon_name]
    argv += ["--bind", f"127.0.0.1:{free_port()}", "--pid", str(pidfile)]
    result = subprocess.run(
        argv,
        cwd=workdir.cwd,
        env=WsgidServer(None, workdir=workdir).environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == ExitCode.PIDFILE, (result.returncode, result.stderr)
    assert "the pidfile could not be created, or another instance holds it" in result.stderr
    assert f"already running with pid {first.pid}" in result.stderr, result.stderr
    assert first.stop() == 0
