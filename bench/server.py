"""Running one server: start it pinned, wait for its first good answer, check its answers."""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.layout import HOST, REPO, SERVER_CPU
from bench.processes import free_port, kill_group, pinned, spawn
from bench.scenarios import BIG_BODY, HELLO_BODY, Scenario, Server


class ServerFailed(Exception):
    """The server did not start, died, or answered wrongly; str() is the reason."""


_LOG_STAMP = re.compile(
    r"^\[?\d{4}-\d\d-\d\d[T ][\d:.,]+(Z| [+-]\d{4})?\]?\s*"
)  # log lines' timestamps


@dataclasses.dataclass
class Running:
    """A server started by us, in its own process group."""

    server: Server
    cmd: list[str]
    port: int
    proc: subprocess.Popen[Any]
    logfile: Path
    startup: float = 0.0  # seconds from spawn to the first good response

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        """The last meaningful line of the server's output (for failure reasons)."""
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        lines = [_LOG_STAMP.sub("", ln.strip()) for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1][:200] if lines else ""

    def why_dead(self) -> str:
        tail = self.log_tail()
        return f"exited with code {self.proc.returncode}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        kill_group(self.proc)


def start_server(server: Server, app: str, threads: int, workdir: Path, timeout: float) -> Running:
    """Start ``server`` pinned to the server CPU and wait for a good answer to ``GET /``."""
    port = free_port()
    cmd = server.command(app, port, threads)
    logfile = workdir / f"{server.name}-{app}-{threads}-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("WSGID_CONFIG", None)
    with open(logfile, "wb") as out:
        t0 = time.perf_counter()
        proc = spawn(pinned(SERVER_CPU, cmd), out, env=env)
    running = Running(server, cmd, port, proc, logfile)
    expect = {"hello": HELLO_BODY, "sleep": HELLO_BODY, "big": BIG_BODY}.get(app)
    deadline = t0 + timeout
    last_error = "no answer"
    while True:
        if not running.alive():
            raise ServerFailed(running.why_dead())
        if time.perf_counter() > deadline:
            running.stop()
            raise ServerFailed(f"no good answer within {timeout:g} s ({last_error})")
        try:
            status, body = http_request(port, "GET", (), b"", timeout=2.0)
        except OSError as e:
            last_error = str(e) or type(e).__name__
            time.sleep(0.005)
            continue
        if status == 200 and (expect is None or body == expect):
            running.startup = time.perf_counter() - t0
            return running
        running.stop()
        raise ServerFailed(f"GET / answered {status} with a {len(body)}-byte body")


def http_request(
    port: int, method: str, headers: Sequence[tuple[str, str]], body: bytes, timeout: float
) -> tuple[int, bytes]:
    """One request over a fresh connection; returns (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        hdrs = dict(headers)
        if body:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        conn.request(method, "/", body=body or None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_answer(running: Running, sc: Scenario) -> None:
    """Check status and body for this scenario's request, twice (keep-alive, then again)."""
    for _ in range(2):
        try:
            status, body = http_request(running.port, sc.method, sc.headers, sc.body, 5.0)
        except OSError as e:
            raise ServerFailed(f"{sc.method} / failed: {e or type(e).__name__}") from e
        if status != 200:
            raise ServerFailed(f"{sc.method} / answered {status}")
        if body != sc.expect:
            raise ServerFailed(
                f"{sc.method} / answered a wrong body ({len(body)} bytes, "
                f"expected {len(sc.expect)})"
            )
