"""wsgid's benchmark driver, run as `bench/run` (or `make bench`); see docs/performance.md.

It installs its baselines (pinned gunicorn and granian, plus wsgid from this repo) into
``bench/.venv`` and wrk through apt, then runs every server with one worker pinned to CPU 1 while
wrk (and the slowloris trickler) runs pinned to CPU 0, over loopback only. Each server's answer is
checked (status and body) before it is loaded. Runs are interleaved round-robin across servers so
that drift hits all of them alike; medians are reported. It also measures idle memory (PSS of the
server's whole process group: master + 1 worker) and start-up time to the first response.

The result is a markdown table printed on stdout and written to ``bench/RESULTS.md`` (or
``--out``), with versions, the machine and the command lines. A server that fails to start or to
answer is reported as "failed" with the reason and the run goes on. Every process started is
killed at the end, also on error or Ctrl-C.

Standard library only: it runs under any Python >= 3.10; the servers run in ``bench/.venv``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv"
VENV_PY = VENV / "bin" / "python"
WORK = BENCH_DIR / ".work"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
POST_LUA = BENCH_DIR / "post16k.lua"
TRICKLE = BENCH_DIR / "trickle.py"

SERVER_CPU = "1"
CLIENT_CPU = "0"
HOST = "127.0.0.1"
TIMES = "\u00d7"  # the multiplication sign of ratios

FOREIGN_CPU = 0.05  # other processes' share of the CPUs during a run above which it is noted
NOISY_RUNS = 0.10  # the report warns when more than this share of the runs were noted so
BUSY_CPU = 0.15  # CPUs busy before the run above which a warning is logged
EXIT_PREREQUISITE = 3  # wrk or the bench venv could not be installed (the smoke test skips)

HELLO_BODY = b"Hello, World!"
BIG_BODY = bytes(range(256)) * 4096  # the same 1 MiB as bench.apps.BIG_BODY
POST_BODY = b"0123456789abcdef" * 1024  # the same 16 KiB as post16k.lua sends

# Chrome-like navigation headers (wrk adds Host): the list plus the whole Sec-Fetch set.
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
        "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    ("Accept-Language", "en-US,en;q=0.9,fr;q=0.8"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    (
        "Cookie",
        "sessionid=3f9a1c2e7b8d4f6a9e0b1c2d3e4f5a6b; csrftoken=Yk7QpLr2Vx9ZbN4mC8dF1gH6jK3sT0wE; "
        "_ga=GA1.1.1234567890.1700000000; theme=dark",
    ),
    ("Referer", "https://www.example.com/articles/2024/benchmarks?page=2"),
    ("Cache-Control", "max-age=0"),
    ("Connection", "keep-alive"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
)


# --------------------------------------------------------------------------------------------
# Servers and scenarios


@dataclasses.dataclass(frozen=True)
class Server:
    """One server and worker kind under test."""

    name: str  # CLI name, e.g. "wsgid-sync"
    label: str  # table label, e.g. "wsgid sync"
    family: str  # "wsgid", "gunicorn" or "granian"
    kind: str  # "sync", "gthread" or "granian"

    def command(self, app: str, port: int, threads: int) -> list[str]:
        """The command line serving ``bench.apps:<app>`` on 127.0.0.1:<port> (unpinned)."""
        target = f"bench.apps:{app}"
        bind = f"{HOST}:{port}"
        py = str(VENV_PY)
        threads_args = ["--threads", str(threads)] if self.kind == "gthread" else []
        if self.family == "wsgid":
            return [
                py,
                "-m",
                "wsgid",
                target,
                "-w",
                "1",
                "-k",
                self.kind,
                *threads_args,
                "-b",
                bind,
            ]
        if self.family == "gunicorn":
            return [
                py,
                "-m",
                "gunicorn",
                "-w",
                "1",
                "-k",
                self.kind,
                *threads_args,
                "-b",
                bind,
                target,
            ]
        # granian's WSGI blocking-thread pool grows on demand (default max: backlog // 2).
        return [
            str(VENV / "bin" / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            "1",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "--host",
            HOST,
            "--port",
            str(port),
            target,
        ]


SERVERS: tuple[Server, ...] = (
    Server("wsgid-sync", "wsgid sync", "wsgid", "sync"),
    Server("wsgid-gthread", "wsgid gthread", "wsgid", "gthread"),
    Server("gunicorn-sync", "gunicorn sync", "gunicorn", "sync"),
    Server("gunicorn-gthread", "gunicorn gthread", "gunicorn", "gthread"),
    Server("granian", "granian", "granian", "granian"),
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One load pattern: an app, a client shape and the server kinds it applies to."""

    name: str
    title: str
    app: str
    conns: int
    threads: int = 4  # --threads for gthread kinds
    headers: tuple[tuple[str, str], ...] = ()
    lua: Path | None = None
    method: str = "GET"
    body: bytes = b""
    expect: bytes = HELLO_BODY
    kinds: tuple[str, ...] = ("sync", "gthread", "granian")
    slowloris: int = 0  # trickling connections held open during the run

    def wrk_command(self, port: int, duration: int) -> list[str]:
        """The wrk command line (unpinned) for this scenario against 127.0.0.1:<port>."""
        cmd = ["wrk", "-t1", f"-c{self.conns}", f"-d{duration}s", "--latency"]
        for k, v in self.headers:
            cmd += ["-H", f"{k}: {v}"]
        if self.lua is not None:
            cmd += ["-s", str(self.lua.relative_to(REPO))]
        return [*cmd, f"http://{HOST}:{port}/"]

    @property
    def group(self) -> tuple[str, int]:
        """Scenarios of one group share running servers (same app, same thread count)."""
        return (self.app, self.threads)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "hello keep-alive, 50 conns", "hello", 50),
    Scenario(
        "headers", "hello + 13 browser headers, 50 conns", "hello", 50, headers=BROWSER_HEADERS
    ),
    Scenario(
        "close",
        "hello, Connection: close, 50 conns",
        "hello",
        50,
        headers=(("Connection", "close"),),
    ),
    Scenario(
        "post",
        "POST echo 16 KiB, 50 conns",
        "echo",
        50,
        lua=POST_LUA,
        method="POST",
        body=POST_BODY,
        expect=POST_BODY,
    ),
    Scenario("big", "1 MiB response, 8 conns", "big", 8, expect=BIG_BODY),
    Scenario(
        "sleep",
        "app sleeps 10 ms, 50 conns, 50 threads",
        "sleep",
        50,
        threads=50,
        kinds=("gthread", "granian"),
    ),
    Scenario("slowloris", "hello keep-alive, 50 conns + 500 trickling", "hello", 50, slowloris=500),
)
SMOKE_SCENARIOS = ("hello", "post", "slowloris")


# --------------------------------------------------------------------------------------------
# Process management: every process we start is in its own process group, killed at exit.


_GROUPS: dict[int, subprocess.Popen[Any]] = {}


class Interrupted(Exception):
    """Raised from a SIGTERM/SIGHUP handler so that ``finally`` blocks clean up."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def spawn(cmd: Sequence[str], out: IO[Any] | int | None, **kw: Any) -> subprocess.Popen[Any]:
    """Start ``cmd`` in a new session (its own process group) and remember it for cleanup."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kw,
    )
    _GROUPS[proc.pid] = proc
    return proc


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, grace: float = 3.0) -> None:
    """Stop a process group: ``sig`` (fast stop), then SIGKILL to whatever is left of it."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # workers that outlived their master, too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    _GROUPS.pop(pgid, None)


def kill_all() -> None:
    """Kill every process group still running (used on exit, error and Ctrl-C)."""
    for proc in list(_GROUPS.values()):
        kill_group(proc, signal.SIGKILL, grace=1.0)


def pinned(cpu: str, cmd: Sequence[str]) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c <cpu>`` when this machine has that CPU and taskset."""
    if shutil.which("taskset") and int(cpu) in os.sched_getaffinity(0):
        return ["taskset", "-c", cpu, *cmd]
    return list(cmd)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Installation of the prerequisites


class PrerequisiteError(Exception):
    """wrk or the bench venv could not be installed."""


def log(msg: str) -> None:
    """Progress goes to stderr so that stdout is the table alone."""
    print(f"[bench] {' '.join(msg.split())}", file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    """Return wrk's path, installing it with apt-get (apt-get update only if needed)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PrerequisiteError("wrk is not installed and apt-get cannot be used (not root?)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    log("installing wrk with apt-get")
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(install, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise PrerequisiteError(f"apt-get install wrk failed: {tail[0]}")
    found = shutil.which("wrk")
    if not found:
        raise PrerequisiteError("wrk not found on PATH after apt-get install")
    return found


def ensure_venv() -> None:
    """Create/refresh bench/.venv with the pinned baselines and wsgid from the repo.

    wsgid is installed as a copy (not editable), with its per-request modules compiled into
    the venv (setup.py): an editable install would compile them in place, rewriting files
    that running processes of the checkout (a test session) have mapped. The copy is redone
    whenever a source of the package changed, so the bench measures the working tree.
    """
    digest = hashlib.sha256()
    sources = sorted((REPO / "daemon" / "wsgid").rglob("*.py"))
    for f in (REQUIREMENTS, REPO / "pyproject.toml", REPO / "setup.py", *sources):
        digest.update(f.read_bytes())
    want = digest.hexdigest()
    stamp = VENV / ".bench-stamp"
    with open(BENCH_DIR / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent bench runs install once
        if VENV_PY.exists() and stamp.exists() and stamp.read_text() == want:
            return
        log(f"installing the baselines and wsgid into {VENV.relative_to(REPO)}")
        if not VENV_PY.exists():
            made = subprocess.run(
                [sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True
            )
            if made.returncode != 0:
                raise PrerequisiteError(f"python -m venv failed: {made.stderr[-300:]}")
        pip = [str(VENV_PY), "-m", "pip", "-q", "--disable-pip-version-check"]
        # The same version from a changed tree would count as installed already.
        subprocess.run([*pip, "uninstall", "-y", "wsgid"], capture_output=True, text=True)
        r = subprocess.run(
            [*pip, "install", "-r", str(REQUIREMENTS), str(REPO)], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise PrerequisiteError(f"pip install into bench/.venv failed: {r.stderr[-500:]}")
        stamp.write_text(want)


# --------------------------------------------------------------------------------------------
# Running one server


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


def group_pids(pgid: int) -> list[int]:
    """All processes of a process group (the server's master and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ...
            pids.append(int(entry))
    return pids


def pss_kib(pid: int) -> int:
    """Proportional set size of one process, in KiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------------------------
# wrk


@dataclasses.dataclass
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p99_ms: float | None
    requests: int
    socket_errors: dict[str, int]
    non_2xx: int
    foreign_cpu: float = 0.0  # share of the machine's CPU time used by other processes meanwhile
    # The server's CPU time per completed request (its whole process group, all threads), µs.
    cpu_user_us: float | None = None
    cpu_sys_us: float | None = None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> WrkResult:
    """Parse wrk's ``--latency`` output."""
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line in wrk output")
    rps = float(m.group(1))
    p99: float | None = None
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if m:
        p99 = float(m.group(1)) * _UNITS_MS[m.group(2)]
    m = re.search(r"^\s+(\d+) requests in", out, re.M)
    requests = int(m.group(1)) if m else 0
    errors: dict[str, int] = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if requests == 0:
        p99 = None  # wrk prints zeros when nothing completed
    return WrkResult(rps, p99, requests, errors, int(m.group(1)) if m else 0)


def run_wrk(sc: Scenario, port: int, duration: int) -> WrkResult:
    """Run wrk pinned to the client CPU; raises RuntimeError on a wrk failure."""
    cmd = pinned(CLIENT_CPU, sc.wrk_command(port, duration))
    with tempfile.TemporaryFile("w+") as out:
        proc = spawn(cmd, out, text=True)
        try:
            proc.wait(duration + 30)
        except subprocess.TimeoutExpired:
            kill_group(proc, signal.SIGKILL)
            raise RuntimeError("wrk did not finish") from None
        _GROUPS.pop(proc.pid, None)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {text.strip()[-200:]}")
    return parse_wrk(text)


@contextlib.contextmanager
def trickling(port: int, conns: int) -> Iterator[list[str]]:
    """Hold ``conns`` slowloris connections to the server for the duration of the block.

    Yields a list that receives the trickler's final counters line after the block.
    """
    stats: list[str] = []
    if conns <= 0:
        yield stats
        return
    cmd = pinned(
        CLIENT_CPU, [sys.executable, str(TRICKLE), "--port", str(port), "--conns", str(conns)]
    )
    proc = spawn(cmd, subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # "ready N" once every connection is open
        if not ready.startswith("ready"):
            raise RuntimeError(f"trickler did not start: {ready.strip()}")
        yield stats
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=10)
            stats.append(rest.strip())
        except subprocess.TimeoutExpired:
            pass
        kill_group(proc, signal.SIGKILL, grace=0.5)


# --------------------------------------------------------------------------------------------
# The benchmark


@dataclasses.dataclass
class Cell:
    """Results of one (scenario, server) pair across runs."""

    runs: list[WrkResult] = dataclasses.field(default_factory=list)
    failed: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def rps(self) -> float | None:
        return statistics.median(r.rps for r in self.runs) if self.runs else None

    @property
    def p99(self) -> float | None:
        vals = [r.p99_ms for r in self.runs if r.p99_ms is not None]
        return statistics.median(vals) if vals else None

    @property
    def cpu_us(self) -> tuple[float, float] | None:
        """Median (user, system) µs of server CPU per request, over the runs that measured it."""
        vals = [
            (r.cpu_user_us, r.cpu_sys_us)
            for r in self.runs
            if r.cpu_user_us is not None and r.cpu_sys_us is not None
        ]
        if not vals:
            return None
        return statistics.median(u for u, _ in vals), statistics.median(s for _, s in vals)


@dataclasses.dataclass
class StartupResult:
    """Idle memory and start-up time of one server across runs."""

    startup_s: list[float] = dataclasses.field(default_factory=list)
    pss_kib: list[int] = dataclasses.field(default_factory=list)
    procs: int = 0
    failed: str | None = None


@dataclasses.dataclass
class Options:
    """Parsed command-line options."""

    runs: int
    duration: int
    warmup: int
    scenarios: list[Scenario]
    servers: list[Server]
    out: Path
    json_out: Path | None
    start_timeout: float
    install: bool
    keep_work: bool
    smoke: bool


def measure_startup(opts: Options, workdir: Path) -> dict[str, StartupResult]:
    """Start each server ``runs`` times (round-robin): time to first answer, then idle PSS."""
    res = {s.name: StartupResult() for s in opts.servers}
    for run in range(opts.runs):
        for server in rotate(opts.servers, run):
            r = res[server.name]
            if r.failed:
                continue
            try:
                running = start_server(server, "hello", 4, workdir, opts.start_timeout)
            except ServerFailed as e:
                r.failed = str(e)
                log(f"{server.label}: failed to start: {e}")
                continue
            try:
                time.sleep(1.0)  # let it settle: workers booted, idle
                pids = group_pids(running.proc.pid)
                r.pss_kib.append(sum(pss_kib(p) for p in pids))
                r.procs = len(pids)
                r.startup_s.append(running.startup)
            finally:
                running.stop()
    return res


def rotate(seq: Sequence[Server], n: int) -> list[Server]:
    """``seq`` rotated by ``n`` places: each run starts with another server."""
    if not seq:
        return []
    n %= len(seq)
    return [*seq[n:], *seq[:n]]


def applicable(sc: Scenario, server: Server) -> bool:
    return server.kind in sc.kinds


def run_group(
    opts: Options, scenarios: list[Scenario], workdir: Path, cells: dict[tuple[str, str], Cell]
) -> None:
    """Start the servers for one group of scenarios, check, warm up, then run round-robin."""
    app, threads = scenarios[0].group
    servers = [s for s in opts.servers if any(applicable(sc, s) for sc in scenarios)]
    running: dict[str, Running] = {}
    try:
        for server in servers:
            try:
                running[server.name] = start_server(
                    server, app, threads, workdir, opts.start_timeout
                )
            except ServerFailed as e:
                log(f"{server.label} ({app}): failed: {e}")
                for sc in scenarios:
                    if applicable(sc, server):
                        cells[(sc.name, server.name)].failed = str(e)
        for sc in scenarios:  # check every answer, then warm up
            for server in servers:
                cell = cells[(sc.name, server.name)]
                r = running.get(server.name)
                if r is None or not applicable(sc, server) or cell.failed:
                    continue
                try:
                    check_answer(r, sc)
                    if opts.warmup > 0:
                        run_wrk(dataclasses.replace(sc, slowloris=0), r.port, opts.warmup)
                except (ServerFailed, RuntimeError, ValueError) as e:
                    cell.failed = f"check failed: {e}"
                    log(f"{sc.name} / {server.label}: {cell.failed}")
        for run in range(opts.runs):
            for sc in scenarios:
                for server in rotate(servers, run):
                    cell = cells[(sc.name, server.name)]
                    r = running.get(server.name)
                    if r is None or not applicable(sc, server) or cell.failed:
                        continue
                    measure_cell(opts, sc, r, cell, run)
    finally:
        for r in running.values():
            r.stop()


def measure_cell(opts: Options, sc: Scenario, r: Running, cell: Cell, run: int) -> None:
    """One wrk run of ``sc`` against ``r`` (with the trickler for slowloris)."""
    if not r.alive():
        cell.failed = f"server died: {r.why_dead()}"
        return
    log(f"run {run + 1}/{opts.runs}: {sc.name} / {r.server.label}")
    before = cpu_snapshot(r.proc.pid)
    try:
        with trickling(r.port, sc.slowloris) as stats:
            res = run_wrk(sc, r.port, opts.duration)
    except (RuntimeError, ValueError) as e:
        cell.failed = str(e)
        return
    after = cpu_snapshot(r.proc.pid)
    res.foreign_cpu = foreign_share(before, after)
    if res.requests:
        per_request = 1e6 / os.sysconf("SC_CLK_TCK") / res.requests
        res.cpu_user_us = (after.server_user - before.server_user) * per_request
        res.cpu_sys_us = (after.server_sys - before.server_sys) * per_request
    cell.runs.append(res)
    if stats and stats[0]:
        cell.notes.append(f"trickler {stats[0]}")
    if not r.alive():
        cell.failed = f"server died during the run: {r.why_dead()}"


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters (clock ticks) to tell the benchmark's own use from other processes'."""

    wall: float  # time.monotonic()
    busy: int  # all CPUs, not idle nor iowait (/proc/stat)
    server_user: int  # the server's process group: utime of its live processes
    server_sys: int  # ... and their stime
    children: float  # our reaped children (wrk, trickler), ticks

    @property
    def server(self) -> int:
        return self.server_user + self.server_sys


def cpu_snapshot(pgid: int) -> CpuSnapshot:
    """Counters now; ``pgid`` is the server's process group."""
    tck = os.sysconf("SC_CLK_TCK")
    busy = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    user = system = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            user += int(f[11])  # utime, all threads
            system += int(f[12])  # stime
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(time.monotonic(), busy, user, system, (ru.ru_utime + ru.ru_stime) * tck)


def foreign_share(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Share of the machine's CPU time between ``a`` and ``b`` used by processes not ours."""
    capacity = (b.wall - a.wall) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    if capacity <= 0:
        return 0.0
    ours = (b.server - a.server) + (b.children - a.children)
    return max(0.0, min(1.0, ((b.busy - a.busy) - ours) / capacity))


def one_line(text: str) -> str:
    """``text`` fit for a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def fmt_rps(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_cpu(v: tuple[float, float] | None) -> str:
    return "—" if v is None else f"{v[0]:.1f} + {v[1]:.1f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f} ms" if v < 100 else f"{v:,.0f} ms"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    if b <= 0:
        return "\u221e" if a > 0 else "—"  # the peer completed no request at all
    return f"{a / b:.2f}{TIMES}"


def cell_notes(cell: Cell) -> str:
    """Errors summed across runs, plus the trickler's counters of the last run."""
    notes = []
    totals: dict[str, int] = {}
    for r in cell.runs:
        for k, v in r.socket_errors.items():
            totals[k] = totals.get(k, 0) + v
        totals["non-2xx"] = totals.get("non-2xx", 0) + r.non_2xx
    errs = ", ".join(f"{k} {v}" for k, v in totals.items() if v)
    rates = [r.rps for r in cell.runs]
    if len(rates) > 1 and statistics.median(rates) > 0:
        spread = (max(rates) - min(rates)) / statistics.median(rates)
        notes.append(f"spread {spread:.0%}")
    foreign = max((r.foreign_cpu for r in cell.runs), default=0.0)
    if foreign > FOREIGN_CPU:
        notes.append(f"other processes used {foreign:.0%} of the CPUs")
    idle = sum(1 for r in cell.runs if r.requests == 0)
    if idle:
        notes.append(f"no request completed in {idle} of {len(cell.runs)} run(s)")
    if errs:
        notes.append(f"errors (all runs): {errs}")
    if cell.notes:
        notes.append(cell.notes[-1])
    return "; ".join(notes)


def peer_name(server: Server) -> str | None:
    """The gunicorn server of the same worker kind as a wsgid server."""
    return f"gunicorn-{server.kind}" if server.family == "wsgid" else None


def render(
    opts: Options,
    cells: dict[tuple[str, str], Cell],
    startup: dict[str, StartupResult],
    meta: dict[str, str],
) -> str:
    """The markdown report: throughput table, memory/start-up table, environment, commands."""
    by_name = {s.name: s for s in opts.servers}
    foreign = [r.foreign_cpu for c in cells.values() for r in c.runs]
    noisy = sum(1 for f in foreign if f > FOREIGN_CPU)
    foreign_text = (
        f"median {statistics.median(foreign):.0%}, max {max(foreign):.0%}; {noisy} of "
        f"{len(foreign)} runs above {FOREIGN_CPU:.0%}"
        if foreign
        else "no run"
    )
    busy = ""
    if foreign and noisy > NOISY_RUNS * len(foreign):
        busy = (
            f"**Warning: other processes used more than {FOREIGN_CPU:.0%} of the machine's CPU "
            f"time during {noisy} of the {len(foreign)} runs (median "
            f"{statistics.median(foreign):.0%}, max {max(foreign):.0%}): the numbers, and even "
            f"the ratios, are unreliable. Rerun on a quiet machine.**\n"
        )
    lines = [
        "# wsgid benchmark results",
        "",
        *([busy] if busy else []),
        f"{meta['date']} · {meta['mode']} · median of {opts.runs} run(s) {TIMES} "
        f"{opts.duration:g} s per scenario, runs interleaved round-robin across servers · "
        f"1 worker per server pinned to CPU {SERVER_CPU}, wrk (`-t1`) and the trickler "
        f"pinned to CPU {CLIENT_CPU}, loopback.",
        "",
        "Ratios are req/s of the wsgid row over req/s of its peer: gunicorn with the same worker "
        "kind and thread count, and granian (one worker, its default growing WSGI thread pool). "
        "CPU µs/req is the server's CPU time (its whole process group, all threads, from /proc) "
        "per completed request, user + system: what a request costs even when the server is not "
        "the bottleneck.",
        "",
        "## Throughput and latency",
        "",
        "| scenario | server | req/s | p99 | CPU µs/req | wsgid / gunicorn (same kind) "
        "| wsgid / granian | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for sc in opts.scenarios:
        for server in opts.servers:
            if not applicable(sc, server):
                continue
            cell = cells[(sc.name, server.name)]
            label = server.label
            if server.kind == "gthread":
                label += f" ({sc.threads} threads)"
            vs_gunicorn = vs_granian = ""
            if server.family == "wsgid":
                peer = peer_name(server)
                pc = cells.get((sc.name, peer)) if peer in by_name else None
                gc = cells.get((sc.name, "granian")) if "granian" in by_name else None
                vs_gunicorn = fmt_ratio(cell.rps, pc.rps if pc else None)
                vs_granian = fmt_ratio(cell.rps, gc.rps if gc else None)
            notes = cell_notes(cell)
            if sc.slowloris and cell.rps is not None:
                clean = cells.get(("hello", server.name))
                if clean is not None and clean.rps:
                    notes = f"{cell.rps / clean.rps:.2f}{TIMES} its clean hello" + (
                        f"; {notes}" if notes else ""
                    )
            if cell.failed and not cell.runs:
                rps, p99, cpu = "failed", "—", "—"
                notes = cell.failed
            else:
                rps, p99, cpu = fmt_rps(cell.rps), fmt_ms(cell.p99), fmt_cpu(cell.cpu_us)
                if cell.failed:
                    notes = f"then failed: {cell.failed}" + (f"; {notes}" if notes else "")
            notes = one_line(notes)
            lines.append(
                f"| {sc.title} | {label} | {rps} | {p99} | {cpu} | {vs_gunicorn} | {vs_granian} "
                f"| {notes} |"
            )
    lines += [
        "",
        "## Idle memory and start-up",
        "",
        "PSS summed over the server's process group (master + 1 worker) after one request and 1 s "
        "idle; start-up is the time from spawning the server to its first good answer to `GET /` "
        "(polled every 5 ms). Medians.",
        "",
        "| server | idle PSS | processes | wsgid / gunicorn PSS | start-up | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for server in opts.servers:
        r = startup[server.name]
        if r.failed and not r.pss_kib:
            lines.append(f"| {server.label} | failed | — | — | — | {one_line(r.failed)} |")
            continue
        pss = statistics.median(r.pss_kib) if r.pss_kib else None
        ratio = ""
        peer = peer_name(server)
        if peer and peer in startup and startup[peer].pss_kib and pss:
            ratio = f"{pss / statistics.median(startup[peer].pss_kib):.2f}{TIMES}"
        up = statistics.median(r.startup_s) if r.startup_s else None
        pss_s = "—" if pss is None else f"{pss / 1024:.1f} MiB"
        up_s = "—" if up is None else f"{up * 1000:.0f} ms"
        lines.append(f"| {server.label} | {pss_s} | {r.procs} | {ratio} | {up_s} | |")
    lines += [
        "",
        "## Environment",
        "",
        f"- machine: {meta['nproc']} CPUs, {meta['cpu']}; Linux {meta['kernel']}",
        f"- Python {meta['python']} (servers, bench/.venv)",
        f"- wsgid {meta['wsgid']}; gunicorn {meta['gunicorn']}; granian {meta['granian']}; "
        f"{meta['wrk']}",
        f"- command: `{meta['argv']}`",
        f"- other processes' share of the CPUs during the runs: {foreign_text}; CPUs busy "
        f"(1 s sample) before the run: {meta['busy_before']}, after it: {meta['busy_after']}",
        "",
        "## Command lines",
        "",
        "Servers (`PORT` is a free port; each one run as `taskset -c "
        f"{SERVER_CPU} …` from the repo root with `PYTHONPATH=.`):",
        "",
        "```",
    ]
    seen: set[str] = set()
    for sc in opts.scenarios:
        for server in opts.servers:
            if not applicable(sc, server):
                continue
            cmd = server.command(sc.app, 0, sc.threads)
            text = " ".join(cmd).replace(f"{HOST}:0", f"{HOST}:PORT")
            text = text.replace("--port 0", "--port PORT").replace(str(REPO) + "/", "")
            if text not in seen:
                seen.add(text)
                lines.append(text)
    lines += ["```", "", f"Load (`taskset -c {CLIENT_CPU} …`):", "", "```"]
    for sc in opts.scenarios:
        wrk = " ".join(_quote(a) for a in sc.wrk_command(0, opts.duration))
        wrk = wrk.replace(f"{HOST}:0", f"{HOST}:PORT")
        lines.append(f"# {sc.name}: {sc.title}")
        if sc.slowloris:
            lines.append(
                f"python bench/trickle.py --port PORT --conns {sc.slowloris}  "
                "# started before wrk, stopped after"
            )
        lines.append(wrk)
    lines += ["```", ""]
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return f"'{arg}'" if re.search(r"[\s;*?()<>&|\"]", arg) else arg


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs' time busy (not idle nor iowait) over ``seconds`` (/proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1.0 - (idle1 - idle0) / total


def versions() -> dict[str, str]:
    """Versions of the servers (from bench/.venv), wrk, and the machine."""
    meta: dict[str, str] = {}
    code = (
        "import importlib.metadata as m, platform, json\n"
        "v = {}\n"
        "for p in ('wsgid', 'gunicorn', 'granian'):\n"
        "    try: v[p] = m.version(p)\n"
        "    except Exception: v[p] = 'not installed'\n"
        "import wsgid\n"
        "v['wsgid'] += f' ({wsgid.build()})'\n"
        "v['python'] = platform.python_version()\n"
        "print(json.dumps(v))\n"
    )
    r = subprocess.run([str(VENV_PY), "-c", code], capture_output=True, text=True)
    meta.update(json.loads(r.stdout) if r.returncode == 0 else {})
    for k in ("wsgid", "gunicorn", "granian", "python"):
        meta.setdefault(k, "?")
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if git.returncode == 0:
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "daemon",
                "pyproject.toml",
                "setup.py",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        meta["wsgid"] += f" (commit {git.stdout.strip()}{', modified' if dirty else ''})"
    w = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    meta["wrk"] = ((w.stdout or w.stderr).strip().splitlines() or ["wrk ?"])[0].split(" [")[0]
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    meta["cpu"] = cpu
    meta["nproc"] = str(os.cpu_count())
    meta["kernel"] = platform.release()
    return meta


def parse_args(argv: Sequence[str] | None) -> Options:
    """Command-line options (see ``bench/run --help``)."""
    sc_names = [s.name for s in SCENARIOS]
    sv_names = [s.name for s in SERVERS]
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="wsgid's benchmark against gunicorn and granian (see docs/performance.md).",
        epilog=f"scenarios: {', '.join(sc_names)}; servers: {', '.join(sv_names)}. "
        f"Exit status {EXIT_PREREQUISITE}: wrk or bench/.venv could not be installed.",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"seconds-long check: 1 run, 1 s, scenarios {','.join(SMOKE_SCENARIOS)}",
    )
    p.add_argument("--runs", type=int, help="runs per scenario and server (default 3)")
    p.add_argument("--duration", type=int, help="whole seconds per wrk run (default 3)")
    p.add_argument(
        "--warmup", type=int, help="whole seconds of warm-up per pair (default 2; 0 with --smoke)"
    )
    p.add_argument("--scenarios", help="comma-separated subset of the scenarios")
    p.add_argument("--servers", help="comma-separated subset of the servers")
    p.add_argument(
        "--out",
        type=Path,
        help="markdown report (default bench/RESULTS.md; "
        "bench/.work/RESULTS-smoke.md with --smoke)",
    )
    p.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=20.0,
        help="seconds a server gets to answer its first request (default 20)",
    )
    p.add_argument("--no-install", action="store_true", help="use bench/.venv and wrk as they are")
    p.add_argument(
        "--keep-work", action="store_true", help="keep the servers' logs in bench/.work/"
    )
    a = p.parse_args(argv)

    def pick(arg: str | None, default: Sequence[str], known: Sequence[str], what: str) -> list[str]:
        names = [n.strip() for n in arg.split(",") if n.strip()] if arg else list(default)
        bad = [n for n in names if n not in known]
        if bad:
            p.error(f"unknown {what}: {', '.join(bad)} (known: {', '.join(known)})")
        return names

    sc_pick = pick(a.scenarios, SMOKE_SCENARIOS if a.smoke else sc_names, sc_names, "scenario")
    sv_pick = pick(a.servers, sv_names, sv_names, "server")
    runs = a.runs if a.runs is not None else (1 if a.smoke else 3)
    duration = a.duration if a.duration is not None else (1 if a.smoke else 3)
    warmup = a.warmup if a.warmup is not None else (0 if a.smoke else 2)
    if runs < 1 or duration <= 0 or warmup < 0:
        p.error("--runs must be >= 1, --duration > 0 and --warmup >= 0")
    out = a.out or (WORK / "RESULTS-smoke.md" if a.smoke else BENCH_DIR / "RESULTS.md")
    return Options(
        runs=runs,
        duration=duration,
        warmup=warmup,
        scenarios=[s for s in SCENARIOS if s.name in sc_pick],
        servers=[s for s in SERVERS if s.name in sv_pick],
        out=out,
        json_out=a.json,
        start_timeout=a.start_timeout,
        install=not a.no_install,
        keep_work=a.keep_work,
        smoke=a.smoke,
    )


def to_json(
    opts: Options, cells: dict[tuple[str, str], Cell], startup: dict[str, StartupResult]
) -> dict[str, Any]:
    """Raw results for tools and tests."""
    return {
        "runs": opts.runs,
        "duration": opts.duration,
        "scenarios": [
            {
                "scenario": sc,
                "server": sv,
                "rps": c.rps,
                "p99_ms": c.p99,
                "failed": c.failed,
                "samples": [dataclasses.asdict(r) for r in c.runs],
            }
            for (sc, sv), c in cells.items()
        ],
        "startup": {name: dataclasses.asdict(r) for name, r in startup.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `bench/run`."""
    opts = parse_args(argv)
    # Ctrl-C raises KeyboardInterrupt even if SIGINT came ignored (a background job of a
    # non-interactive shell); the servers then get SIGINT's default action too, so that the
    # fast stop below (SIGINT) works.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    WORK.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=WORK))
    try:
        if opts.install:
            ensure_wrk()
            ensure_venv()
        elif not (shutil.which("wrk") and VENV_PY.exists()):
            raise PrerequisiteError("--no-install: wrk or bench/.venv is missing")
        t0 = time.monotonic()
        meta = versions()
        before = cpu_busy()
        meta["busy_before"] = f"{before:.0%}"
        if before > BUSY_CPU:
            log(f"warning: the machine is busy ({before:.0%} of its CPU time)")
        meta["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        meta["mode"] = "smoke mode" if opts.smoke else "full mode"
        meta["argv"] = " ".join(["bench/run", *(sys.argv[1:] if argv is None else argv)])
        log(f"idle memory and start-up ({len(opts.servers)} servers, {opts.runs} runs each)")
        startup = measure_startup(opts, workdir)
        cells = {
            (sc.name, sv.name): Cell()
            for sc in opts.scenarios
            for sv in opts.servers
            if applicable(sc, sv)
        }
        groups: dict[tuple[str, int], list[Scenario]] = {}
        for sc in opts.scenarios:
            groups.setdefault(sc.group, []).append(sc)
        for group in groups.values():
            run_group(opts, group, workdir, cells)
        after = cpu_busy()
        meta["busy_after"] = f"{after:.0%}"
        report = render(opts, cells, startup, meta)
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(report)
        if opts.json_out:
            opts.json_out.write_text(json.dumps(to_json(opts, cells, startup), indent=1))
        print(report)
        log(f"done in {time.monotonic() - t0:.0f} s; wrote {opts.out}")
        return 0
    except PrerequisiteError as e:
        log(f"cannot run: {e}")
        return EXIT_PREREQUISITE
    except (KeyboardInterrupt, Interrupted):
        log("interrupted; stopping every server")
        return 130
    finally:
        kill_all()
        if opts.keep_work:
            log(f"server logs kept in {workdir.relative_to(REPO)}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()  # only if empty (the smoke report may live there)
