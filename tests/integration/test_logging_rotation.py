"""logrotate (the real binary) with a `postrotate` that sends USR1, while clients keep requesting.

After the rotation the master and every worker write to the new files, and every request
served before, during and after it is in exactly one of the two access files: nothing lost,
nothing written twice.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from test_logging_app import APP, app_args, ensure_apt, read_lines, wait_for

from support.server import WorkDir, WsgidServer

WORKERS = 3


class Clients:
    """Threads requesting `/pid?id=<unique>` on fresh connections until stopped."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.ok: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            rid = f"c{n}-{i}"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", f"/pid?id={rid}", headers={"Connection": "close"})
                status = conn.getresponse().status
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors.append(f"{rid}: {exc!r}")
                continue
            finally:
                conn.close()
            if status == 200:
                with self._lock:
                    self.ok.append(rid)

    def count(self) -> int:
        with self._lock:
            return len(self.ok)

    def stop(self) -> list[str]:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return self.ok


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in read_lines(path)]


def reject_until_seen(server: WsgidServer, path: Path, pids: set[int]) -> None:
    """Send malformed requests until every pid in `pids` logged `request.rejected` to `path`."""

    def seen() -> bool:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"BAD\r\n\r\n")
            while sock.recv(4096):
                pass
        found = {r.get("pid") for r in records(path) if r.get("event") == "request.rejected"}
        return pids <= found

    wait_for(seen, timeout=30, what=f"request.rejected from workers {pids} in {path.name}")


def test_logrotate_postrotate_usr1_under_load_loses_nothing(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    problem = ensure_apt("logrotate")
    if problem:
        pytest.skip(problem)
    access, error = workdir.logs / "access.log", workdir.logs / "error.log"
    pidfile = workdir.root / "wsgid.pid"
    server = wsgid(
        APP, *app_args(), "--access-logfile", str(access), "--access-logformat", "json",
        "--error-logfile", str(error), "--log-format", "json", "--pid", str(pidfile),
        workers=WORKERS,
    )  # fmt: skip
    workers = set(server.worker_pids())
    conf = workdir.root / "logrotate.conf"
    conf.write_text(
        f"{access} {error} {{\n"
        "    rotate 3\n    missingok\n    create 0640\n    sharedscripts\n"
        f"    postrotate\n        kill -USR1 $(cat {pidfile})\n    endscript\n}}\n"
    )
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"

    clients = Clients(server.port)
    try:
        wait_for(lambda: clients.count() > 200, timeout=30, what="load before the rotation")
        result = subprocess.run(
            [logrotate, "-f", "-s", str(workdir.root / "logrotate.state"), str(conf)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        rotated_access, rotated_error = Path(f"{access}.1"), Path(f"{error}.1")
        assert rotated_access.exists() and rotated_error.exists()

        # Every worker writes its requests to the new access file...
        wait_for(
            lambda: workers <= {r["pid"] for r in records(access)},
            timeout=30,
            what="access records of every worker in the new file",
        )
        # ... and its error events to the new error file; so does the master.
        reject_until_seen(server, error, workers)
        server.send_signal(signal.SIGTTIN)
        wait_for(
            lambda: any(r.get("event") == "master.workers_changed" for r in records(error)),
            what="a master event in the new error file",
        )
        before = clients.count()
        wait_for(lambda: clients.count() > before + 200, timeout=30, what="load after")
    finally:
        served = clients.stop()
    assert not clients.errors, clients.errors[:10]
    assert server.stop(signal.SIGTERM) == 0

    logged = Counter(
        str(r["query"])[3:]
        for path in (rotated_access, access)
        for r in records(path)
        if str(r.get("query", "")).startswith("id=")
    )
    assert set(served) == set(logged), "every request served is logged"
    assert all(n == 1 for n in logged.values()), "and logged once"
    assert any(r["pid"] in workers for r in records(rotated_access))
    assert oct(access.stat().st_mode & 0o777) == "0o640"
    master_events = [r for r in records(error) if r.get("pid") == server.pid]
    assert master_events, "the master writes to the new error file"
