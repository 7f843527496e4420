"""The harness's leak checks can fail: each one is shown catching what it is there to catch.

These start stand-in processes (not wsgid) through the same WsgidServer class, so the checks
that guard every other test are themselves tested.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap

from support import procs
from support.client import poll
from support.server import WorkDir, WsgidServer


def stand_in(workdir: WorkDir, code: str) -> WsgidServer:
    server = WsgidServer(
        None,
        workdir=workdir,
        bind_tcp=False,
        command=lambda _port: [sys.executable, "-c", textwrap.dedent(code)],
        name="stand-in",
    )
    server.spawn()
    assert server.wait_exit(timeout=10) == 0, server.errlog()
    return server


def test_harness_reports_process_left_running_after_master_exit(workdir: WorkDir) -> None:
    server = stand_in(
        workdir,
        """
        import os, sys, time
        if os.fork() == 0:
            time.sleep(60)  # an orphaned "worker"
        else:
            print(os.getpid(), flush=True)
        """,
    )
    orphans = [st.pid for st in procs.members(server.pid)]
    assert orphans, "the stand-in's child should still run"
    problems = server.close()
    assert any("processes left running" in p for p in problems), problems
    assert procs.wait_gone(orphans, timeout=5) == [], "close() must kill what was left"


def test_harness_reports_socket_file_left_behind(workdir: WorkDir) -> None:
    server = stand_in(
        workdir,
        """
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind("../left.sock")
        """,
    )
    problems = server.close()
    assert any("socket files left behind" in p and "left.sock" in p for p in problems), problems


def test_harness_reports_files_left_in_server_tmpdir(workdir: WorkDir) -> None:
    server = stand_in(
        workdir,
        """
        import tempfile
        tempfile.mkstemp(prefix="heartbeat-")
        """,
    )
    problems = server.close()
    assert any("TMPDIR" in p and "heartbeat-" in p for p in problems), problems


def test_harness_clean_stand_in_reports_nothing(workdir: WorkDir) -> None:
    server = stand_in(workdir, "print('nothing to leave behind')")
    assert server.close() == []
    assert server.outlog().strip() == "nothing to leave behind"


def test_harness_finds_daemon_that_escaped_group_and_session(workdir: WorkDir) -> None:
    """A double-forked, setsid() daemon leaves the group checks behind; its cwd betrays it."""
    pid_file = workdir.root / "daemon.pid"
    stand_in(
        workdir,
        f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
                os.rename({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
                time.sleep(60)
            os._exit(0)
        """,
    )
    poll(pid_file.exists, timeout=10, what="the daemon's pid file")
    daemon = int(pid_file.read_text())
    try:
        assert procs.read_stat(daemon) is not None
        assert daemon in procs.users_of(str(workdir.root))
    finally:
        os.kill(daemon, signal.SIGKILL)
        procs.wait_gone([daemon], timeout=5)
