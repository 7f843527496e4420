"""Helpers of the master-lifecycle tests: a client load loop, error-log events, /proc facts.

- `LoadLoop`: client threads on loopback sending requests continuously, some over keep-alive
  connections and some each on a new connection, until stopped. Nothing is retried: an
  exception (ECONNRESET, an empty response, a timeout) or a status other than 200 is a
  failure. A response carrying `Connection: close` followed by a reconnect is the clean way
  for a server to end a keep-alive connection and is counted, not failed.
- `events(text)`: the error log parsed into `LogEvent`s (`<time> [<level>] <event> k=v ...`,
  with any traceback lines attached to the event before them).
- `new_generation`: a poll condition for a reload's new workers, and only them.
- `/proc` facts: the inode of the socket listening on a TCP port, which processes hold it,
  the pid a pidfile names, the pids of a process in its pid namespaces; `stop_process` for a
  master that is not the test's child (the new master of a USR2 upgrade).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from support import procs

if TYPE_CHECKING:
    from support.server import WsgidServer

# ----------------------------------------------------------------------------------- load


@dataclass
class Served:
    """One successful response: when its request was sent (monotonic), which worker, over
    which kind of client.

    The send time, not the time the answer was read: a client thread that the scheduler holds
    back between reading an answer and recording it would otherwise date an old worker's
    answer after a mark taken once that worker had gone.
    """

    at: float
    pid: int
    client: str


@dataclass
class LoadStats:
    served: list[Served] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    closes: int = 0  # responses with `Connection: close` on a keep-alive client (reconnects)

    def pids(self, since: float = 0.0) -> Counter[int]:
        """Requests served by each worker pid at or after `since` (monotonic)."""
        return Counter(s.pid for s in self.served if s.at >= since)

    def summary(self) -> str:
        head = f"{len(self.served)} served, {len(self.failures)} failed, {self.closes} closes"
        return head + "".join(f"\n  {f}" for f in self.failures[:20])


class LoadLoop:
    """Continuous requests to 127.0.0.1:`port` from client threads, until `stop()`.

    `keepalive` threads each hold one persistent connection (http.client reconnects only
    after a response that said `Connection: close`); `fresh` threads open a new connection
    for every request. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        port: int,
        path: str = "/pid",
        *,
        keepalive: int = 3,
        fresh: int = 1,
        timeout: float = 10.0,
    ) -> None:
        self.port = port
        self.path = path
        # Each request's own query (which client, which request) follows the path's.
        self.query_start = "&" if "?" in path else "?"
        self.timeout = timeout
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._keepalive_client, args=(i,), daemon=True)
            for i in range(keepalive)
        ] + [
            threading.Thread(target=self._fresh_client, args=(i,), daemon=True)
            for i in range(fresh)
        ]
        self.started_at = 0.0

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LoadLoop:
        self.started_at = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float | None = None) -> LoadStats:
        """Stop the clients (each finishes its current request) and return the stats."""
        self._stop.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout + 5)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self._fail("stop", f"client threads still running after stop: {stuck}")
        return self.stats

    def count(self) -> int:
        with self._lock:
            return len(self.stats.served)

    def wait_served(self, n: int, timeout: float = 20.0, since: float = 0.0) -> None:
        """Poll until `n` more requests were served after `since` (default: from the start)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                done = sum(1 for s in self.stats.served if s.at >= since)
                failures = list(self.stats.failures)
            if done >= n:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"load: only {done} of {n} requests served in {timeout}s; "
                    f"failures: {failures[:5]}"
                )
            time.sleep(0.02)

    def wait_pids(
        self, predicate: Callable[[set[int]], bool], since: float, timeout: float = 20.0
    ) -> set[int]:
        """Poll until the set of pids that served requests since `since` satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pids = {s.pid for s in self.stats.served if s.at >= since}
            if predicate(pids):
                return pids
            if time.monotonic() >= deadline:
                raise AssertionError(f"load: pids served since t={since:.3f}: {sorted(pids)}")
            time.sleep(0.02)

    # the clients

    def _fail(self, client: str, what: str) -> None:
        with self._lock:
            now = time.time()
            wall = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
            self.stats.failures.append(
                f"{wall} (t=+{time.monotonic() - self.started_at:.3f}s) {client}: {what}"
            )

    def _record(
        self, client: str, sent: float, resp: http.client.HTTPResponse, body: bytes
    ) -> bool:
        if resp.status != 200:
            self._fail(client, f"status {resp.status}: {body[:200]!r}")
            return False
        try:
            pid = int(json.loads(body)["pid"])
        except (ValueError, KeyError, TypeError) as exc:
            self._fail(client, f"unexpected body {body[:200]!r}: {exc}")
            return False
        with self._lock:
            self.stats.served.append(Served(sent, pid, client))
        return True

    def _keepalive_client(self, index: int) -> None:
        name = f"keepalive-{index}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                sent = time.monotonic()
                try:
                    conn.request("GET", f"{self.path}{self.query_start}c={name}&n={n}")
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._fail(name, f"request {n}: {type(exc).__name__}: {exc}")
                    conn.close()
                    continue
                self._record(name, sent, resp, body)
                if resp.will_close:  # http.client has closed it; the next request reconnects
                    with self._lock:
                        self.stats.closes += 1
        finally:
            conn.close()

    def _fresh_client(self, index: int) -> None:
        name = f"fresh-{index}"
        n = 0
        while not self._stop.is_set():
            n += 1
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            sent = time.monotonic()
            try:
                # Alternate: half say `Connection: close`, half leave the close to the client.
                headers = {"Connection": "close"} if n % 2 else {}
                conn.request("GET", f"{self.path}{self.query_start}c={name}&n={n}", headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._fail(name, f"request {n}: {type(exc).__name__}: {exc}")
                continue
            finally:
                conn.close()
            self._record(name, sent, resp, body)


# --------------------------------------------------------------------------- error log

_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+) \[(\w+)\] (\S+)(.*)$")
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


@dataclass
class LogEvent:
    """One error-log event: `<time> [<level>] <event> key=value ...` (+ traceback lines)."""

    time: str
    level: str
    event: str
    fields: dict[str, str]
    line: str
    traceback: str = ""

    def get(self, key: str) -> str | None:
        return self.fields.get(key)

    @property
    def text(self) -> str:
        """The whole record: its line plus the block lines under it (traceback, stacks)."""
        return self.line + "\n" + self.traceback


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return re.sub(
            r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), inner, flags=re.S
        )
    return value


def events(text: str, name: str | None = None, **match: object) -> list[LogEvent]:
    """The events in an error log, optionally only `name` with fields equal to `match`."""
    found: list[LogEvent] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            if found:
                found[-1].traceback += line + "\n"
            continue
        fields = {k: _unquote(v) for k, v in _PAIR.findall(m.group(4))}
        found.append(LogEvent(m.group(1), m.group(2), m.group(3), fields, line))
    return [
        e
        for e in found
        if (name is None or e.event == name)
        and all(same(e.fields.get(k), v) for k, v in match.items())
    ]


def same(logged: str | None, expected: object) -> bool:
    """A logged value equals `expected` (booleans in any case: `True`, `true`)."""
    if logged is None:
        return False
    if isinstance(expected, bool):
        return logged.lower() == str(expected).lower()
    return logged == str(expected)


def wait_event(
    read: Callable[[], str],
    name: str,
    timeout: float = 10.0,
    count: int = 1,
    check: Callable[[], None] | None = None,
    **match: object,
) -> list[LogEvent]:
    """Poll the log returned by `read()` until `count` events `name` (matching) are in it.

    `check`, called on every turn, may raise to end the wait early (e.g. the server died).
    """
    deadline = time.monotonic() + timeout
    while True:
        text = read()
        found = events(text, name, **match)
        if len(found) >= count:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{count} x {name} {match or ''} not in the log after {timeout}s "
                f"(found {len(found)}):\n{text[-6000:]}"
            )
        if check is not None:
            check()
        time.sleep(0.02)


# ----------------------------------------------------------------------------- /proc


def listening_inodes(port: int) -> list[int]:
    """Inodes of the TCP sockets (IPv4 and IPv6) in LISTEN state on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                local, state, inode = cols[1], cols[3], int(cols[9])
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    found.append(inode)
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` has open (its /proc/<pid>/fd links `socket:[N]`)."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def pidfile_pid(path: Path) -> int | None:
    """The pid written in `path`, or None if there is no such file (or it is being written)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def wait_pidfile(path: Path, timeout: float) -> int:
    """Poll until `path` names a pid; return it."""
    deadline = time.monotonic() + timeout
    while True:
        pid = pidfile_pid(path)
        if pid is not None:
            return pid
        if time.monotonic() >= deadline:
            raise AssertionError(f"no pid in {path} after {timeout}s")
        time.sleep(0.02)


def exactly_children(pid: int, n: int) -> Callable[[], list[int]]:
    """A poll condition: the live children of `pid` if there are exactly `n`, else []."""

    def check() -> list[int]:
        pids = procs.children(pid)
        return pids if len(pids) == n else []

    return check


def new_generation(server: WsgidServer, old: set[int], count: int) -> Callable[[], list[int]]:
    """A poll condition: exactly `count` workers run, none of them from `old`."""

    def check() -> list[int]:
        server.check_running()
        pids = server.worker_pids()
        return pids if len(pids) == count and not old & set(pids) else []

    return check


def ns_pids(pid: int) -> list[int]:
    """`pid` as seen from each pid namespace it is in, outermost first (/proc status NSpid)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    return [pid]


def stop_process(pid: int, sig: int, timeout: float, also: Sequence[int] = ()) -> float:
    """Signal `pid` (not our child: it cannot be waited for) and poll until it and `also` are gone.

    Returns the seconds it took; fails with the survivors after `timeout`.
    """
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    left = procs.wait_gone([pid, *also], timeout)
    assert not left, f"still running {timeout}s after signal {sig} to {pid}: {left}"
    return time.monotonic() - started
