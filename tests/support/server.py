"""`WsgidServer`: one real wsgid process tree on a loopback port, for integration tests.

What it guarantees, so the tests need not:
- the master runs `python -m wsgid APP --bind 127.0.0.1:<free port> ...` from the interpreter
  running the tests (the repo's .venv), in its own session and process group, with an empty
  working directory, its own TMPDIR and an environment cleared of `WSGID_*`, `PORT`,
  `WEB_CONCURRENCY` and `FORWARDED_ALLOW_IPS` (which would change wsgid's defaults);
- its stdout and stderr go to files in the test's work directory (`.outlog()`, `.errlog()`);
- `wait_ready()` polls until the port answers an HTTP request (or the caller's own probe, for
  HTTPS), and fails with the captured stderr if the master died first;
- `close()` (called by the fixture) stops a still-running master with INT, then checks that no
  process of its group or session, and no worker ever seen, is left running, and that a master
  which exited cleanly left no socket file and nothing in its TMPDIR. Anything left is killed
  and reported as a test error.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support import procs
from support.client import RawConnection
from wsgid.exitcodes import ExitCode

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS_DIR = REPO_ROOT / "tests" / "apps"

# Variables that change wsgid's defaults or the test apps: never inherited from the caller.
_SCRUBBED_PREFIXES = ("WSGID_", "TESTAPP_")
_SCRUBBED_NAMES = {
    "PORT",
    "WEB_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
    "PYTHONPATH",
    "GUNICORN_CMD_ARGS",
    "DJANGO_SETTINGS_MODULE",
    "PYTHONSTARTUP",
}


def scrubbed_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any configuration of wsgid or the apps in it (`WSGID_*`,
    gunicorn's variables...), the test apps' directory as the Python path, then `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED_NAMES
    }
    env["PYTHONPATH"] = str(APPS_DIR)
    env.update(extra or {})
    return env


# A worker's title, or its master's in the moment after the fork (see worker_pids).
WORKER_TITLES = ("wsgid: worker", "wsgid: master")


class ServerDied(AssertionError):
    """The master exited while the test expected it to run."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> object:
        import json

        return json.loads(self.body)


@dataclass
class WorkDir:
    """A test's private directory tree: `cwd/` for the server, `tmp/` its TMPDIR, `logs/`."""

    root: Path
    cwd: Path = field(init=False)
    tmp: Path = field(init=False)
    logs: Path = field(init=False)
    markers: Path = field(init=False)

    def __post_init__(self) -> None:
        self.cwd = self.root / "cwd"
        self.tmp = self.root / "tmp"
        self.logs = self.root / "logs"
        self.markers = self.root / "markers"
        for d in (self.cwd, self.tmp, self.logs, self.markers):
            d.mkdir(parents=True, exist_ok=True)


def socket_files(root: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(p.lstat().st_mode):
                    found.append(p)
    return found


class WsgidServer:
    """A wsgid master (and its workers) started for one test.

    `command`, when given, builds the argv from the chosen port instead of the default
    `python -m wsgid APP --bind 127.0.0.1:PORT ARGS...` (used to test `make run`).
    """

    def __init__(
        self,
        app: str | None,
        args: Sequence[str] = (),
        *,
        workdir: WorkDir,
        env: Mapping[str, str] | None = None,
        bind_tcp: bool = True,
        command: Callable[[int], list[str]] | None = None,
        name: str = "wsgid",
    ) -> None:
        self.app = app
        self.args = list(args)
        self.workdir = workdir
        self.extra_env = dict(env or {})
        self.bind_tcp = bind_tcp
        self.command = command
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()
        self.killed_hard = False  # the test SIGKILLed the master: no cleanup can be expected
        self._errlog_path = workdir.logs / f"{name}.stderr"
        self._outlog_path = workdir.logs / f"{name}.stdout"
        self.started_at = 0.0

    # ----------------------------------------------------------------- start and readiness

    def environ(self) -> dict[str, str]:
        env = scrubbed_environ()
        env["PYTHONUNBUFFERED"] = "1"
        env["TMPDIR"] = str(self.workdir.tmp)
        env["TESTAPP_MARKERS"] = str(self.workdir.markers)
        env.update(self.extra_env)
        return env

    def argv(self) -> list[str]:
        if self.command is not None:
            return self.command(self.port)
        argv = [sys.executable, "-m", "wsgid"]
        if self.app is not None:
            argv.append(self.app)
        if self.bind_tcp:
            argv += ["--bind", f"127.0.0.1:{self.port}"]
        return argv + self.args

    def spawn(self) -> WsgidServer:
        """Start the master; do not wait for anything."""
        assert self.proc is None, "already started"
        self.port = free_port()
        with open(self._outlog_path, "wb") as out, open(self._errlog_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(),
                cwd=self.workdir.cwd,
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.seen_pids.add(self.proc.pid)
        return self

    def start(
        self,
        timeout: float = 30.0,
        workers: int | None = None,
        ready: Callable[[], object] | None = None,
    ) -> WsgidServer:
        """Spawn and wait until the port answers HTTP (and `workers` workers run, if given);
        `ready` as in `wait_ready`.

        A port taken between free_port() and wsgid's bind (exit code 5) is retried elsewhere.
        """
        for attempt in range(3):
            self.spawn()
            try:
                self.wait_ready(timeout, ready)
                break
            except ServerDied:
                assert self.proc is not None
                if self.proc.returncode != ExitCode.LISTEN_FAILED or attempt == 2:
                    raise
                self._reap_after_failed_start()
        if workers is not None:
            self.wait_workers(workers, timeout)
        return self

    def _reap_after_failed_start(self) -> None:
        assert self.proc is not None
        self.close(check=False)
        self.proc = None

    def wait_ready(self, timeout: float = 30.0, ready: Callable[[], object] | None = None) -> None:
        """Poll until a request is answered: `ready()`, which raises OSError or HTTPException
        until the server serves (an HTTPS request, say), or else a plain HTTP GET."""
        assert self.proc is not None and self.bind_tcp
        probe = ready or (lambda: self.request("GET", "/", timeout=2.0))
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerDied(
                    f"wsgid exited with {self.proc.returncode} before answering HTTP on port "
                    f"{self.port}\n--- argv: {self.argv()}\n--- stderr:\n{self.errlog()}"
                )
            try:
                probe()
                return
            except (OSError, http.client.HTTPException) as e:
                last_error = e
                time.sleep(0.05)
        raise AssertionError(
            f"wsgid did not answer HTTP on port {self.port} within {timeout}s "
            f"(last error: {last_error!r})\n--- stderr:\n{self.errlog()}"
        )

    # ------------------------------------------------------------------------ processes

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The master's live workers, sorted.

        A worker is a child titled `wsgid: worker [...]`, or still `wsgid: master [...]` in
        the moment after its fork. That leaves out the short-lived child that reads the
        configuration (at start its title is the plain command line, on HUP it renames
        itself `wsgid: reading configuration` first thing) and anything an app spawns.
        """
        children = procs.children(self.pid)
        self.seen_pids.update(children)  # all of them, for the leak check
        return [pid for pid in children if procs.cmdline(pid).startswith(WORKER_TITLES)]

    def wait_workers(self, n: int, timeout: float = 10.0) -> list[int]:
        """Poll until exactly `n` workers run; return their pids."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if len(pids) == n:
                return pids
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {n} workers, found {len(pids)} ({pids}) after {timeout}s\n"
                    f"--- stderr:\n{self.errlog()}"
                )
            self.check_running()
            time.sleep(0.02)

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ServerDied(f"wsgid exited with {self.proc.returncode}\n{self.errlog()}")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        if sig == signal.SIGKILL:
            self.killed_hard = True
        self.worker_pids()  # remember who was there
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the master to exit; return its exit status (negative: killed by signal)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"wsgid master {self.proc.pid} still running after {timeout}s\n"
                f"--- stderr:\n{self.errlog()}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the master and return its exit status."""
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def check(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`wsgid check APP ARGS...` (this server's app) in its directory and environment."""
        app = [self.app] if self.app is not None else []
        return subprocess.run(
            [sys.executable, "-m", "wsgid", "check", *app, *args],
            cwd=self.workdir.cwd,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # ------------------------------------------------------------------------- logs

    def errlog(self) -> str:
        try:
            return self._errlog_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def outlog(self) -> str:
        try:
            return self._outlog_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, timeout: float = 5.0, stream: str = "stderr") -> str:
        """Poll until `needle` appears in stderr (or stdout); return the whole text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.errlog() if stream == "stderr" else self.outlog()
            if needle in text:
                return text
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{needle!r} not in wsgid's {stream} after {timeout}s:\n{text}"
                )
            time.sleep(0.02)

    # ------------------------------------------------------------------------- HTTP

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def connect(self, timeout: float = 10.0, source: str | None = None) -> socket.socket:
        """A raw TCP connection to the server; from the loopback address `source`, if given
        (127.0.0.2, say: a second client address, all of 127.0.0.0/8 being loopback)."""
        address = None if source is None else (source, 0)
        return socket.create_connection(
            ("127.0.0.1", self.port), timeout=timeout, source_address=address
        )

    def raw(self, timeout: float = 10.0, source: str | None = None) -> RawConnection:
        """A raw HTTP connection (bytes in, parsed responses out; pipelining-safe); `source`
        as in `connect`."""
        return RawConnection(self.connect(timeout, source))

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
        encode_chunked: bool = False,
    ) -> Response:
        """One request on a fresh connection, which is closed afterwards."""
        conn = self.connection(timeout)
        try:
            conn.request(
                method, path, body=body, headers=dict(headers or {}), encode_chunked=encode_chunked
            )
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.headers, data)
        finally:
            conn.close()

    def get(self, path: str, **kw: object) -> Response:
        return self.request("GET", path, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------- cleanup

    def leftovers(self) -> list[procs.ProcStat]:
        """Live processes of the master's group/session, plus workers seen that still run."""
        assert self.proc is not None
        found = {st.pid: st for st in procs.members(self.proc.pid)}
        for pid in self.seen_pids:
            st = procs.read_stat(pid)
            if st is None or st.state in ("Z", "X") or pid in found:
                continue
            # A pid seen earlier may have been reused by an unrelated process: only count it if
            # it still looks like ours.
            if "wsgid" in procs.cmdline(pid) or st.pgrp == self.proc.pid:
                found[pid] = st
        return list(found.values())

    def close(self, check: bool = True) -> list[str]:
        """Stop whatever still runs and return the problems found (empty: clean)."""
        if self.proc is None:
            return []
        problems: list[str] = []
        if self.proc.poll() is None:
            # The test left it running: a fast stop must end the whole tree promptly.
            with contextlib.suppress(ProcessLookupError):
                self.worker_pids()
                os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problems.append(f"master {self.proc.pid} ignored SIGINT for 10s")
                procs.kill_group(self.proc.pid)
                self.proc.wait(timeout=10)
                self.killed_hard = True
        still = self.leftovers()
        if still:
            # Give processes that are already exiting a moment, then call it a leak.
            still_pids = procs.wait_gone([st.pid for st in still], timeout=2.0)
            still = [st for st in still if st.pid in still_pids]
        if still:
            problems.append(
                f"processes left running after the master exited: {procs.describe(still)}"
            )
            procs.kill_group(self.proc.pid)
            for st in still:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(st.pid, signal.SIGKILL)
            procs.wait_gone([st.pid for st in still], timeout=5.0)
        clean_exit = not self.killed_hard and self.proc.returncode is not None
        if clean_exit and self.proc.returncode >= 0:
            socks = socket_files(self.workdir.root)
            if socks:
                problems.append(f"socket files left behind: {[str(s) for s in socks]}")
            tmp_left = sorted(p.name for p in self.workdir.tmp.iterdir())
            if tmp_left:
                problems.append(f"files left in wsgid's TMPDIR: {tmp_left}")
        if problems and check:
            problems.append(f"--- stderr of {self.name}:\n{self.errlog()}")
        return problems if check else []
