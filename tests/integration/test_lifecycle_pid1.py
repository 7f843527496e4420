"""wsgid as PID 1 of a container: children it did not fork are reaped and never taken for workers.

The server runs as PID 1 of a fresh pid namespace (`unshare --pid --fork --mount-proc`),
started as `sh -c '<orphans> & exec python -m wsgid ...'`: the shell's background jobs become
children of wsgid when the shell execs it, and a double-forked job is re-parented to PID 1,
as happens in any container. They exit with 3 and 4, the very codes a worker uses for "boot
failed" and "app could not be loaded": the server must reap them quietly and keep serving.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from support import procs
from support.client import poll
from support.load import events, exactly_children, ns_pids
from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode

APP = "lifecycle_app:app"

# $1 = when the orphans exit: "ready" (after the test drops a marker) or "boot" (as soon as
# PID 1 is wsgid, while its workers are still importing a slow app).
ORPHANS = r"""
when=$1; shift
wait_turn() {
    if [ "$when" = ready ]; then
        while [ ! -e "$TESTAPP_MARKERS/go" ]; do sleep 0.02; done
    else
        while [ "$(cat /proc/1/comm)" = sh ]; do sleep 0.01; done
    fi
}
(wait_turn; exit 3) &
( (wait_turn; exit 4) & )
exec "$@"
"""


UNSHARE_PID = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def unshare_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "a new pid namespace needs root here"
    probe = subprocess.run(
        [*UNSHARE_PID, "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"unshare --pid --fork --mount-proc fails here: {probe.stderr.decode().strip()}"
    return None


def as_pid1(*args: str) -> Callable[[int], list[str]]:
    """The command of `wsgid APP --bind ... ARGS` as PID 1 of a new pid namespace, for the
    `wsgid` fixture's `command`; skips the test where such a namespace cannot be made."""
    reason = unshare_unavailable()
    if reason:
        pytest.skip(reason)

    def command(port: int) -> list[str]:
        wsgid_argv = [sys.executable, "-m", "wsgid", APP, "--bind", f"127.0.0.1:{port}"]
        return [*UNSHARE_PID, *wsgid_argv, *args]

    return command


def orphans(master: int) -> list[procs.ProcStat]:
    """The shell jobs among the children of `master`, zombies (exited, unreaped) included."""
    return [st for st in procs.all_stats() if st.ppid == master and st.comm == "sh"]


@pytest.mark.parametrize("when", ["ready", "boot"])
def test_pid1_reaps_unrelated_children_exiting_3_and_4_and_keeps_serving(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, when: str
) -> None:
    reason = unshare_unavailable()
    if reason:
        pytest.skip(reason)
    slow = {"SLOW_IMPORT_SECONDS": "2"}
    app, env = (APP, {}) if when == "ready" else ("slow_import_app:app", slow)

    def command(port: int) -> list[str]:
        wsgid_argv = [sys.executable, "-m", "wsgid", app, "--bind", f"127.0.0.1:{port}", "-w", "2"]
        return [*UNSHARE_PID, "sh", "-c", ORPHANS, "sh", when, *wsgid_argv]

    server = wsgid(None, command=command, env=env)
    (master,) = procs.children(server.pid)  # unshare's one child: the namespace's init
    try:
        check_pid1_serves_through_orphans(server, workdir, master, when)
    finally:
        # unshare ignores SIGINT (the harness's stop): stop wsgid itself, as a runtime would.
        if procs.is_alive(master):
            os.kill(master, signal.SIGTERM)
    assert server.wait_exit(timeout=30) == 0, server.errlog()


def check_pid1_serves_through_orphans(
    server: WsgidServer, workdir: WorkDir, master: int, when: str
) -> None:
    assert ns_pids(master)[-1] == 1, f"wsgid is not PID 1 of its namespace: {ns_pids(master)}"
    assert "wsgid" in procs.cmdline(master)
    if when == "ready":
        # Both jobs wait for the marker as children of wsgid (one inherited, one re-parented).
        assert len(orphans(master)) == 2, procs.describe(orphans(master))
        (workdir.markers / "go").touch()
    # Both exit (3 and 4) and are reaped; only the two workers remain.
    poll(lambda: not orphans(master), timeout=20, what="the orphans to be reaped")
    workers = set(poll(exactly_children(master, 2), 20, what="the two workers"))

    for i in range(5):
        resp = server.get(f"/pid?after-orphans={i}")
        assert resp.status == 200, server.errlog()
    log = server.errlog()
    assert set(procs.children(master)) == workers, "the workers must still be the same ones"
    assert not events(log, "worker.boot_failed"), log
    assert not events(log, "worker.exited"), log
    assert not events(log, "master.stopping"), log


def test_pid1_stops_on_a_term_that_arrives_while_it_reads_its_configuration(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # PID 1 ignores a signal it has no handler for: a TERM (a pod deleted as it starts) that
    # came before the master's handlers were lost, and the server ran until the runtime's
    # SIGKILL, 30 s later under Kubernetes. A configuration that takes a second to read holds
    # the start in that window.
    config = workdir.cwd / "slow.conf.py"
    config.write_text("import time\n\ntime.sleep(1)\nworkers = 1\n")
    server = wsgid(None, command=as_pid1("-c", str(config)), start=False)

    def reading_its_configuration() -> int | None:
        # wsgid, exec'd, with its settings child: the configuration is being read.
        for pid in procs.children(server.pid):
            if "-m wsgid" in procs.cmdline(pid) and procs.children(pid):
                return pid
        return None

    master = poll(reading_its_configuration, timeout=20, what="wsgid reading its configuration")
    os.kill(master, signal.SIGTERM)
    try:
        rc = server.wait_exit(timeout=15)
    finally:
        if procs.is_alive(master):
            os.kill(master, signal.SIGKILL)
    assert rc == 0, server.errlog()


def test_pid1_warns_on_usr2_that_its_exit_would_end_the_new_master(
    wsgid: Callable[..., WsgidServer],
) -> None:
    # The new master of a binary upgrade is PID 1's child: when PID 1 exits, as the upgrade's
    # last step has it, the kernel kills everything in the namespace, the new master too.
    server = wsgid(None, command=as_pid1())
    (master,) = procs.children(server.pid)
    try:
        os.kill(master, signal.SIGUSR2)
        log = server.wait_log("upgrade.pid1", timeout=10)
        assert "the new master included" in log, log
        server.wait_log("master.ready pid=", timeout=20)
        assert server.get("/pid").status == 200
    finally:
        if procs.is_alive(master):
            os.kill(master, signal.SIGTERM)
    assert server.wait_exit(timeout=30) == 0, server.errlog()


def test_pid1_refuses_daemon_with_exit_2_instead_of_detaching_into_its_own_death(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # `daemon = true` copied into a container's configuration: the daemon is PID 1's child,
    # killed by the kernel as PID 1 exits once it has detached; the container ended at once
    # with status 0 and nothing serving (gunicorn does the same).
    command = as_pid1("-D")
    server = wsgid(None, command=command, start=False)
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG, server.errlog()
    err = server.errlog()
    assert "daemon" in err and "PID 1" in err, err
    assert "Traceback" not in err, err
    # `wsgid check` run the same way says the same.
    check_argv = command(0)
    check_argv.insert(check_argv.index("wsgid") + 1, "check")
    env = server.environ()
    check = subprocess.run(
        check_argv, cwd=workdir.cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == ExitCode.CONFIG, check.stdout + check.stderr
    assert "PID 1" in check.stderr, check.stderr
