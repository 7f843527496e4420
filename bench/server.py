"""Running one server: start it pinned, wait for its first good answer, check its answers."""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.haproxy import Haproxy, start_haproxy
from bench.layout import HOST, REPO, SERVER_CPU, TLS_CERT
from bench.processes import free_port, kill_group, pinned, spawn
from bench.scenarios import BIG_BODY, HELLO_BODY, Scenario, Server


class ServerFailed(Exception):
    """The server did not start, died, or answered wrongly; str() is the reason."""


_LOG_STAMP = re.compile(
    r"^\[?\d{4}-\d\d-\d\d[T ][\d:.,]+(Z| [+-]\d{4})?\]?\s*"
)  # log lines' timestamps


def log_tail(logfile: Path) -> str:
    """The last meaningful line of a process's output (for failure reasons)."""
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return ""
    lines = [_LOG_STAMP.sub("", ln.strip()) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:200] if lines else ""


def exit_reason(proc: subprocess.Popen[Any], logfile: Path) -> str:
    """Why a process that ended did: its exit code and the last line of its output."""
    tail = log_tail(logfile)
    return f"exited with code {proc.returncode}" + (f": {tail}" if tail else "")


@dataclasses.dataclass
class Running:
    """A server started by us, in its own process group, and the HAProxy in front of it if any."""

    server: Server
    cmd: list[str]
    port: int  # where clients connect: the server's port, or its HAProxy's
    proc: subprocess.Popen[Any]
    logfile: Path
    startup: float = 0.0  # seconds from spawn to the first good response
    haproxy: Haproxy | None = None
    tls: ssl.SSLContext | None = None  # the checks' client context when it serves HTTPS

    def alive(self) -> bool:
        return self.proc.poll() is None and (self.haproxy is None or self.haproxy.alive())

    def why_dead(self) -> str:
        if self.proc.poll() is None and self.haproxy is not None:
            return "HAProxy " + exit_reason(self.haproxy.proc, self.haproxy.logfile)
        return exit_reason(self.proc, self.logfile)

    def stop(self) -> None:
        kill_group(self.proc)
        if self.haproxy is not None:
            self.haproxy.stop()


def start_server(
    server: Server,
    app: str,
    threads: int,
    workdir: Path,
    timeout: float,
    haproxy: bool = False,
    tls: bool = False,
    idle: int = 0,
) -> Running:
    """Start ``server`` pinned to the server CPU and wait for a good answer to ``GET /``.

    With ``haproxy``, an HAProxy is started in front of it (sending the PROXY header the server
    requires): the answer is asked for through it, and ``Running.port`` is its port. With
    ``tls``, it serves HTTPS with the certificate in ``workdir``, which its answers are checked
    against.
    """
    port = free_port()
    cmd = server.command(app, port, threads, workdir, tls, idle)
    name = f"{server.name}-{app}-{threads}-{port}"
    logfile = workdir / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **dict(server.env)}
    env.pop("WSGID_CONFIG", None)
    with open(logfile, "wb") as out:
        t0 = time.perf_counter()
        proc = spawn(pinned(SERVER_CPU, cmd), out, env=env)
    front = start_haproxy(port, server.proxy, workdir, name) if haproxy else None
    client = ssl.create_default_context(cafile=workdir / TLS_CERT) if tls else None
    running = Running(
        server, cmd, front.port if front else port, proc, logfile, haproxy=front, tls=client
    )
    expect = {"hello": HELLO_BODY, "sleep": HELLO_BODY, "big": BIG_BODY}.get(app)
    deadline = t0 + timeout
    last_error = "no answer"
    while True:
        if not running.alive():
            reason = running.why_dead()
            running.stop()  # the HAProxy, or the server, that is left
            raise ServerFailed(reason)
        if time.perf_counter() > deadline:
            running.stop()
            raise ServerFailed(f"no good answer within {timeout:g} s ({last_error})")
        try:
            status, body = http_request(running.port, "GET", (), b"", 2.0, running.tls)
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
    port: int,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One request over a fresh connection (HTTPS with ``tls``); returns (status, body)."""
    conn = (
        http.client.HTTPSConnection(HOST, port, timeout=timeout, context=tls)
        if tls
        else http.client.HTTPConnection(HOST, port, timeout=timeout)
    )
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
            status, body = http_request(
                running.port, sc.method, sc.headers, sc.body, 5.0, running.tls
            )
        except OSError as e:
            raise ServerFailed(f"{sc.method} / failed: {e or type(e).__name__}") from e
        if status != 200:
            raise ServerFailed(f"{sc.method} / answered {status}")
        if body != sc.expect:
            raise ServerFailed(
                f"{sc.method} / answered a wrong body ({len(body)} bytes, "
                f"expected {len(sc.expect)})"
            )
