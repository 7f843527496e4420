"""A worker holds no descriptor of the master's pidfile.

The master keeps the pidfile open (O_WRONLY) to hold its lock; a worker inherited that
descriptor across fork, so the app, even running as `nobody`, could write any pid into the
root-owned file. The worker closes its copy right after the fork (the lock stays the
master's: it belongs to the open file, which the master still holds).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path

from support.kinds import kind_args
from support.server import APPS_DIR, WorkDir, WsgidServer


def test_the_app_finds_no_descriptor_of_the_pidfile_and_cannot_change_it(
    wsgid: Callable[..., WsgidServer],
    workdir: WorkDir,
    readable_by_all: Callable[..., Path],
    kind: str,
) -> None:
    pidfile = workdir.root / "wsgid.pid"
    env = {"TESTAPP_PIDFILE": str(pidfile)}
    args = [*kind_args(kind), "--pid", str(pidfile)]
    as_nobody = os.geteuid() == 0
    if as_nobody:
        # As in deployments: the master root, the app `nobody`, which must not be able to
        # touch the root-owned pidfile through a descriptor nor by its path.
        args += ["--user", "nobody", "--group", str(pwd.getpwnam("nobody").pw_gid)]
        env["PYTHONPATH"] = str(readable_by_all(APPS_DIR / "probe_app.py"))
        env["TESTAPP_PIDFILE_BY_PATH"] = "1"
    server = wsgid("probe_app:app", *args, env=env, workers=2)
    held = os.stat(pidfile)
    for _ in range(4):  # both workers, whichever answers
        report = server.get("/fds").json()
        assert isinstance(report, dict)
        fds = report["fds"]
        assert fds, report  # the listing works: at least stdin/stdout/stderr are there
        pidfile_fds = [
            fd for fd in fds
            if fd["target"] == str(pidfile) or (fd["dev"], fd["ino"]) == (held.st_dev, held.st_ino)
        ]  # fmt: skip
        assert not pidfile_fds, report
        assert not any(w.endswith("written") for w in report["writes"]), report
    assert pidfile.read_text() == f"{server.pid}\n"
    assert server.stop() == 0
    assert not pidfile.exists()
