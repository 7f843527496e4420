"""wsgid on a read-only root filesystem (a container's `readOnlyRootFilesystem: true`).

Nothing but the mounts a pod adds is writable: no /tmp, no /var/tmp, no writable working
directory. The server runs in a mount namespace of its own where those are read-only bind
mounts of themselves, so the host is untouched. It serves (its heartbeats and scoreboard are
in shared memory, not files); what needs a file says which setting gives it a place, with
exit status 2 and no traceback, and `wsgid check` says the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from support.server import WorkDir, WsgidServer, scrubbed_environ
from wsgid.exitcodes import ExitCode

APP = "lifecycle_app:app"

# $@ is the command to run; every place tempfile looks for a temporary directory (TMPDIR, the
# test's, is under /tmp, as is the working directory) becomes read-only for it.
READ_ONLY = r"""
for d in /tmp /var/tmp /usr/tmp; do
    if [ -d "$d" ]; then
        mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 99
    fi
done
exec "$@"
"""


def _read_only_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "a mount namespace needs root here"
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", READ_ONLY, "sh", "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"read-only bind mounts fail here: {probe.stderr.decode().strip()}"
    return None


def _read_only(argv: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY, "sh", *argv]


@pytest.fixture
def read_only_root() -> None:
    reason = _read_only_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.mark.usefixtures("read_only_root")
def test_a_read_only_root_serves(wsgid: Callable[..., WsgidServer]) -> None:
    def command(port: int) -> list[str]:
        bind = f"127.0.0.1:{port}"
        return _read_only([sys.executable, "-m", "wsgid", APP, "--bind", bind, "-w", "2"])

    server = wsgid(None, command=command, workers=2)
    assert server.get("/").status == 200
    assert server.stop() == 0, server.errlog()


@pytest.mark.usefixtures("read_only_root")
def test_metrics_without_a_writable_temporary_directory_is_a_configuration_error(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # metrics_bind makes wsgid keep the app's prometheus multiprocess directory, by default
    # a new one in the temporary directory.
    args = [APP, "--metrics-bind", "127.0.0.1:0"]
    server = wsgid(
        None,
        command=lambda port: _read_only(
            [sys.executable, "-m", "wsgid", *args, "--bind", f"127.0.0.1:{port}"]
        ),
        start=False,
    )
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG, server.errlog()
    log = server.errlog()
    assert "Traceback" not in log, log
    assert "no writable temporary directory" in log, log
    assert "prometheus_multiproc_dir" in log, log

    # `wsgid check` refuses it too, with the same words.
    check = subprocess.run(
        _read_only([sys.executable, "-m", "wsgid", "check", *args]),
        cwd=workdir.cwd,
        env=scrubbed_environ({"TMPDIR": str(workdir.tmp)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == ExitCode.CONFIG, check.stdout + check.stderr
    assert "no writable temporary directory" in check.stderr, check.stderr
