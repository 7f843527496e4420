"""`wsgid status`: what each worker is doing, read from a running master's control socket.

The real command (`python -m wsgid status`) against a real server: a busy worker shows the
path and age of its slow request; the socket is 0600 and the master checks the peer's
credentials, so another user is refused (by the file mode, and by the check itself when the
mode lets it connect); without a control socket the command says how to get one.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.load import events, wait_event
from support.server import WsgidServer

APP = "lifecycle_app:app"
NOBODY = 65534


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgid", "status", *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory another user may enter (pytest's own are 0700): the socket goes in it."""
    path = Path(tempfile.mkdtemp(prefix="wsgid-status-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_status_shows_a_busy_worker_with_the_path_and_age_of_its_slow_request(
    wsgid: Callable[..., WsgidServer], run_dir: Path, kind: str
) -> None:
    sock = run_dir / "control.sock"
    server = wsgid(APP, *kind_args(kind), "--control-socket", str(sock), workers=2)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(server.get, "/sleep?s=4&tag=slow")

        def busy() -> dict[str, object] | None:
            answer = status("--control-socket", str(sock), "--json")
            assert answer.returncode == 0, answer.stderr
            doc = json.loads(answer.stdout)
            for worker in doc["workers"]:
                for running in worker["running"]:
                    if running["path"] == "/sleep" and running["age"] >= 1.0:
                        return {"doc": doc, "worker": worker, "running": running}
            return None

        seen = poll(busy, timeout=15, what="the slow request in `wsgid status --json`")
        worker, running = seen["worker"], seen["running"]
        assert isinstance(worker, dict) and isinstance(running, dict)
        assert worker["state"] == "busy" and worker["pid"] in server.worker_pids()
        assert running["method"] == "GET" and len(running["request_id"]) == 20
        table = status("--control-socket", str(sock))
        assert table.returncode == 0, table.stderr
        line = next(ln for ln in table.stdout.splitlines() if ln.startswith(str(worker["pid"])))
        assert " busy " in line and "GET /sleep (" in line, table.stdout
        assert "idle" in table.stdout and f"master {server.pid}" in table.stdout
        assert slow.result(timeout=30).status == 200
    doc = seen["doc"]
    assert isinstance(doc, dict)
    assert doc["listeners"] == [f"http://127.0.0.1:{server.port}"]
    assert doc["master"]["state"] == "serving" and doc["master"]["generation"] == 1


def test_status_refuses_another_user_by_mode_and_by_peer_credentials(
    wsgid: Callable[..., WsgidServer], run_dir: Path
) -> None:
    """0600 keeps another user out at connect(); with a mode that lets it connect (0666) the
    master's peer-credentials check still refuses it, and logs the attempt."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    client = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('denied'); sys.exit(0)\n"
        "try:\n"
        "    s.sendall(b'GET /status HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
        "    print('answered' if s.recv(100) else 'closed')\n"
        # Refused before or while it sends: a reset, or a broken pipe if the close came first.
        "except (ConnectionResetError, BrokenPipeError):\n"
        "    print('closed')\n"
    )
    closed = run_dir / "closed.sock"
    wsgid(APP, "--control-socket", str(closed), workers=1)
    out = subprocess.run(
        [*as_nobody, "/usr/bin/python3", "-c", client, str(closed)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.stdout.strip() == "denied", out.stdout + out.stderr

    opened = run_dir / "open.sock"
    server = wsgid(APP, "--control-socket", str(opened), "--control-socket-mode", "666", workers=1)
    out = subprocess.run(
        [*as_nobody, "/usr/bin/python3", "-c", client, str(opened)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.stdout.strip() == "closed", out.stdout + out.stderr
    (refused,) = wait_event(server.errlog, "control.refused", check=server.check_running)
    assert refused.level == "warning" and refused.fields["peer_uid"] == str(NOBODY)
    # The server's own user is answered on the same socket.
    assert status("--control-socket", str(opened)).returncode == 0


def test_status_finds_the_socket_in_systemds_runtime_directory_by_default(
    wsgid: Callable[..., WsgidServer], run_dir: Path
) -> None:
    env = {"RUNTIME_DIRECTORY": str(run_dir)}
    server = wsgid(APP, workers=1, env=env)
    assert (run_dir / "control.sock").is_socket()
    answer = status(env=env)
    assert answer.returncode == 0, answer.stderr
    assert f"master {server.pid}" in answer.stdout
    assert not events(server.errlog(), "control.refused")


def test_status_without_a_control_socket_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNTIME_DIRECTORY"}
    answer = subprocess.run(
        [sys.executable, "-m", "wsgid", "status"],
        capture_output=True, text=True, timeout=30, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert answer.returncode == 2, answer.stderr
    assert "no control socket" in answer.stderr and "control_socket" in answer.stderr
    answer = status("--control-socket", str(tmp_path / "absent.sock"))
    assert answer.returncode == 1 and "no control socket at" in answer.stderr
    relative = status("--control-socket", "wsgid.ctl")
    assert relative.returncode == 2 and "relative path" in relative.stderr
