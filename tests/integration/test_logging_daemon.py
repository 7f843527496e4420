"""In daemon mode (`-D`, no terminal, stdio detached) the logs still reach their file and syslog.

`wsgid -D` is run the way a shell script runs it; the daemon carries a unique process name
so that whatever happens, the teardown finds and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_logging_app import APP, app_args, read_lines, wait_for
from test_logging_syslog import Rsyslog, rsyslog  # noqa: F401 - the fixture

from support import procs
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer, free_port


def launch(workdir: WorkDir, name: str, *args: str) -> int:
    """Start `wsgid -D`; return the port once the launcher reported the daemon ready.

    The launcher writes nothing: the logs go to their destinations, not to its terminal.
    """
    port = free_port()
    env = WsgidServer(None, workdir=workdir).environ()
    argv = [sys.executable, "-m", "wsgid", APP, *app_args(), "--daemon", "--name", name]
    argv += ["--bind", f"127.0.0.1:{port}", "--pid", str(workdir.root / "wsgid.pid"), *args]
    result = subprocess.run(
        argv, cwd=workdir.cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == result.stderr == ""
    return port


def stop(workdir: WorkDir) -> None:
    pid = int((workdir.root / "wsgid.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not procs.is_alive(pid), timeout=30, what="the daemon to stop")


def request(port: int, path: str, rid: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Request-ID": rid})
        return conn.getresponse().status
    finally:
        conn.close()


def test_daemon_logs_to_files_including_captured_output(workdir: WorkDir, daemon_name: str) -> None:
    access, error = workdir.logs / "access.log", workdir.logs / "error.log"
    port = launch(
        workdir, daemon_name, "--access-logfile", str(access), "--access-logformat", "json",
        "--error-logfile", str(error), "--log-format", "json", "--capture-output",
    )  # fmt: skip
    try:
        assert request(port, "/pid", "daemon-1") == 200
        assert request(port, "/boom", "daemon-2") == 500
        assert request(port, "/print?msg=from-the-daemon", "daemon-3") == 200
        wait_for(
            lambda: (
                {"daemon-1", "daemon-2", "daemon-3"}
                <= {json.loads(ln)["request_id"] for ln in read_lines(access)}
            ),
            what="the daemon's access records",
        )
        events = wait_for(
            lambda: (
                (evs := [json.loads(ln) for ln in read_lines(error)])
                and any(e.get("message") == "from-the-daemon-err" for e in evs)
                and evs
            ),
            what="the daemon's error events",
        )
    finally:
        stop(workdir)
    boom = [e for e in events if e["event"] == "app.error"]
    assert boom and boom[0]["request_id"] == "daemon-2" and "RuntimeError" in boom[0]["exception"]
    output = {(e["stream"], e["message"]) for e in events if e["event"] == "app.output"}
    assert {("stdout", "from-the-daemon"), ("stderr", "from-the-daemon-err")} <= output


def test_daemon_logs_to_syslog(workdir: WorkDir, daemon_name: str, rsyslog: Rsyslog) -> None:  # noqa: F811
    port = launch(
        workdir, daemon_name, "--error-logfile", rsyslog.socket_3164, "--access-logfile",
        f"udp://127.0.0.1:{rsyslog.udp_port}", "--log-syslog-prefix", "daemonized",
    )  # fmt: skip
    try:
        assert request(port, "/pid?daemon=syslog", "daemon-s1") == 200
        rsyslog.wait(lambda r: "/pid?daemon=syslog" in r.msg and r.program == "daemonized.access")
        rsyslog.wait(lambda r: "master.started" in r.msg and r.program == "daemonized")
    finally:
        stop(workdir)
    stopped = rsyslog.wait(lambda r: "master.stopped" in r.msg, what="master.stopped")
    assert stopped[0].program == "daemonized"


def test_captured_output_of_a_daemon_goes_to_the_error_log(
    workdir: WorkDir, daemon_name: str
) -> None:
    error = workdir.logs / "error.log"
    port = launch(workdir, daemon_name, "--error-logfile", str(error), "--capture-output")
    try:
        assert request(port, "/print?msg=quiet", "daemon-q") == 200
        wait_for(lambda: "quiet-err" in error.read_text(), what="captured output in the file")
    finally:
        stop(workdir)
    assert Path(error).read_text().count("master.stopped") == 1


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_a_daemons_first_workers_report_an_app_error_and_answer_500_on_every_kind(
    workdir: WorkDir, daemon_name: str, kind: str
) -> None:
    # The first workers copy their errors to the launcher's readiness pipe, long closed by
    # then: eventlet's patched os.write retried that write for ever, the request unanswered.
    error = workdir.logs / "error.log"
    port = launch(workdir, daemon_name, *kind_args(kind), "--error-logfile", str(error))
    try:
        assert request(port, "/boom", "daemon-k1") == 500
        wait_for(lambda: "RuntimeError" in error.read_text(), timeout=30, what="the traceback")
        assert request(port, "/pid", "daemon-k2") == 200
    finally:
        stop(workdir)
