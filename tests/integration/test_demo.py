"""The demo app and the README's `make run`, driven with the real curl binary."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Callable

from support.server import REPO_ROOT, WorkDir, WsgidServer


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    curl_bin = shutil.which("curl")
    assert curl_bin, "curl is not installed (scripts/apt-deps.sh installs it)"
    return subprocess.run(
        [curl_bin, "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def status_of(*args: str) -> str:
    result = curl("--output", "/dev/null", "--write-out", "%{http_code}", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_answers_curl_with_200(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid("wsgid.demo:app")
    assert status_of(f"{server.url}/") == "200"
    body = curl(f"{server.url}/")
    assert body.returncode == 0 and body.stdout


def test_make_run_serves_demo_with_shipped_config(wsgid: Callable[..., WsgidServer]) -> None:
    """`make run` (the README's first command) with only the port changed by a flag."""
    make = shutil.which("make")
    assert make, "make is not installed"
    server = wsgid(
        None,
        command=lambda port: [
            make,
            "-s",
            "-C",
            str(REPO_ROOT),
            "run",
            f"ARGS=--bind 127.0.0.1:{port}",
        ],
        timeout=180,  # a first `make run` may still have to install into .venv
    )
    assert status_of(f"{server.url}/") == "200"
    # Ctrl-C at the terminal: SIGINT to the whole foreground process group (make and wsgid).
    os.killpg(server.pid, signal.SIGINT)
    server.wait_exit(timeout=15)


def test_unix_socket_bind_serves_curl_and_file_removed_on_stop(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    path = workdir.root / "wsgid.sock"
    server = wsgid("wsgid.demo:app", "--bind", f"unix:{path}")  # and the TCP bind: two listeners
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert status_of("--unix-socket", str(path), "http://localhost/") == "200"
    assert status_of(f"{server.url}/") == "200"
    assert server.stop(signal.SIGTERM) == 0
    assert not path.exists(), "the unix socket file was left behind"


def test_stale_unix_socket_file_is_replaced(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    path = workdir.root / "stale.sock"
    # A socket file whose server is gone (as after a crash): bound, never unlinked.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    server = wsgid("wsgid.demo:app", "--bind", f"unix:{path}")
    assert status_of("--unix-socket", str(path), "http://localhost/") == "200"
    assert server.stop(signal.SIGTERM) == 0
    assert not path.exists()
