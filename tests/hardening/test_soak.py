"""The hardening soak: good traffic and rounds of attacks against one wsgid, for a long time.

Owns: the good-traffic clients (`GoodTraffic`), the process sampler (`Sampler`), the rules the
soak asserts, and its summary. The attacks themselves are in attacks.py.

One real wsgid (2 workers, `soak_app:app`, default settings otherwise) per worker kind serves,
for WSGID_SOAK_SECONDS seconds (default 600):
- good traffic without pause: keep-alive clients (GET, the ~10 ms `/slow`, POST echoes of 1 KiB
  and 200 KiB, pipelined pairs, and now and then `/error`, whose 500 is an expected answer),
  and clients opening a connection per request (`Connection: close`, HTTP/1.0, keep-alive
  closed by the client). Every answer is checked byte for byte; nothing is retried;
- every attack of attacks.py, each in its own thread, round after round.

Asserted at the end:
- no good request failed (a failure says which client, which request, when, what went wrong);
- every attack got the answers its rules allow (attacks.py: malformed requests 4xx and closed,
  drip-fed heads and bodies and stalled writes ended by the server);
- memory stayed flat, by two rules on each process's resident set (/proc/PID/status):
  1. ceiling: its peak (VmHWM) never exceeds its idle RSS plus RSS_BUDGET_MIB;
  2. growth: from the sample at the end of the warm-up (the first two minutes, or the first
     quarter of a shorter soak) to the last one, its RSS grows by at most RSS_GROWTH_MIB;
- once the attacks and the traffic stop, every process's open fds come back to their idle
  count (no connection is leaked), and the master runs, the same pid, with its 2 workers (a
  worker replaced during the soak is tracked by pid and reported, not failed by itself);
- the fixtures check that no process is left behind.

The summary (good requests by type, attack outcomes by type, RSS and fds per sample and
process) is printed; run with `-s` to see it (`make soak` does). How to run: README.md.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hardening.attacks import (
    Attack,
    Attacker,
    HugeHeads,
    Malformed,
    NonReaders,
    ResetBursts,
    Slowloris,
    TrickledBodies,
)
from support import procs
from support.client import RawConnection, RawResult
from support.kinds import kind_args
from support.server import WsgidServer

SOAK_SECONDS = float(os.environ.get("WSGID_SOAK_SECONDS", "600"))
WORKERS = 2
WARM_UP = min(120.0, SOAK_SECONDS / 4)
SAMPLE_EVERY = max(5.0, min(30.0, SOAK_SECONDS / 10))
# Ceiling over a process's idle RSS, at any time. Measured without the huge-heads attack (3
# minutes, the code of 2026-12-02): peaks of +8 MiB (sync) and +20 MiB (gthread). What a sound
# worker may add to that, worst case: 300 refused 800 KiB heads, each keeping at most one read
# (64 KiB) until its connection is gone (19 MiB), and the non-readers' queued output (the
# kernel takes ~3 MiB of each connection's 2 x 3 MiB; measured: +2 MiB): ~45 MiB in all.
# A worker that buffers the unfinished heads whole (attack 1) grows ~330 MiB a round
# (measured); one that refuses them at their first read but keeps its parser's buffers until
# the connection ends peaked at +61 (sync) and +73 MiB (gthread): both fail.
RSS_BUDGET_MIB = 64
# Growth allowed from the end of the warm-up to the end: by then every kind of round has run
# at least once, so the allocator's arenas have their working size; what grows afterwards is
# a leak. The soak answers ~700 good requests a second (measured on 2 shared cores), some
# 300,000 after a 10-minute soak's warm-up, so 16 MiB catches a leak of ~60 bytes a request,
# or of 1 KiB per attack connection (over 20,000 of them).
RSS_GROWTH_MIB = 16
# Fds a process may hold above its idle count once everything stopped (a log file reopened,
# a pool thread's pipe): slack, not a leak.
FD_SLACK = 2
QUIESCE_TIMEOUT = 60.0  # for the attack connections to be gone from the server
GOOD_TIMEOUT = 20.0  # one good request, on a loaded shared machine
# A keep-alive client reconnects before a request if its connection idled this long: the
# server may close it at `keepalive` (2 s), and a request racing that close is no server fault.
STALE_AFTER = 1.0
MAX_DETAILS = 100  # failures reported in full (a dead server would fail millions)

HELLO = b"hello, soak\n"
SLOW = b"slow\n"
ERROR_500 = b"500 Internal Server Error\n"
ECHO_BODIES = [os.urandom(200 * 1024) for _ in range(4)]


# ------------------------------------------------------------------------------ good traffic


@dataclass(frozen=True)
class Expect:
    status: int
    body: bytes


@dataclass(frozen=True)
class Exchange:
    """Bytes sent in one write, and the answers expected, in order."""

    kind: str
    request: bytes
    answers: tuple[Expect, ...]


def get(path: str, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return f"GET {path} {version}\r\nHost: soak\r\n{extra}\r\n".encode()


def post_echo(body: bytes) -> bytes:
    head = f"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def keepalive_exchanges(n: int) -> list[Exchange]:
    """The `n`th cycle of a keep-alive client: unique bodies, so a mixed-up answer shows."""
    tag = f"{threading.get_ident()}-{n}-".encode()
    small = tag + os.urandom(1024)
    large = tag + ECHO_BODIES[n % len(ECHO_BODIES)]
    pipelined = tag + b"pipelined"
    cycle = [
        Exchange("keepalive GET /", get("/"), (Expect(200, HELLO),)),
        Exchange("keepalive GET /slow", get("/slow"), (Expect(200, SLOW),)),
        Exchange("keepalive POST 1 KiB echo", post_echo(small), (Expect(200, small),)),
        Exchange("keepalive POST 200 KiB echo", post_echo(large), (Expect(200, large),)),
        Exchange(
            "pipelined pair (GET + POST)",
            get("/?pipelined") + post_echo(pipelined),
            (Expect(200, HELLO), Expect(200, pipelined)),
        ),
    ]
    if n % 10 == 0:  # a traceback in the error log each: not too many
        cycle.append(Exchange("app error, 500 expected", get("/error"), (Expect(500, ERROR_500),)))
    return cycle


# One request per connection: (kind, request, expected answer, the server closes after it).
ONE_SHOTS = [
    ("Connection: close GET", get("/", "Connection: close\r\n"), Expect(200, HELLO), True),
    ("HTTP/1.0 GET", get("/", version="HTTP/1.0"), Expect(200, HELLO), True),
    ("new connection GET /slow", get("/slow"), Expect(200, SLOW), False),
]


def connect(port: int) -> RawConnection:
    return RawConnection(socket.create_connection(("127.0.0.1", port), timeout=GOOD_TIMEOUT))


def check(got: RawResult, want: Expect) -> str:
    """'' if `got` is the answer expected, else what differs."""
    if got.status != want.status:
        return f"status {got.status}, expected {want.status}; body {got.body[:120]!r}"
    if got.body != want.body:
        return (
            f"body of {len(got.body)} bytes {got.body[:60]!r}..., expected "
            f"{len(want.body)} bytes {want.body[:60]!r}..."
        )
    return ""


@dataclass
class GoodTally:
    requests: Counter[str] = field(default_factory=Counter)
    slowest: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first MAX_DETAILS failures
    stale_reconnects: int = 0
    server_closes: int = 0  # keep-alive answers that said `Connection: close`


class GoodTraffic:
    """`keepalive` threads on persistent connections and `one_shot` threads opening a
    connection per request, all sending without pause until `stop()`."""

    def __init__(self, port: int, keepalive: int = 3, one_shot: int = 2) -> None:
        self.port = port
        self.tally = GoodTally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._keepalive, args=(f"keepalive-{i}",), daemon=True)
            for i in range(keepalive)
        ] + [
            threading.Thread(target=self._one_shots, args=(f"one-shot-{i}", i), daemon=True)
            for i in range(one_shot)
        ]

    def start(self) -> GoodTraffic:
        self.started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + GOOD_TIMEOUT + 10
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self._fail("stop", "-", f"client threads still running after stop: {stuck}")

    def _fail(self, client: str, what: str, error: str) -> None:
        now = time.time()
        wall = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        with self._lock:
            self.tally.failed += 1
            if len(self.tally.failures) < MAX_DETAILS:
                self.tally.failures.append(
                    f"{wall} (t=+{time.monotonic() - self.started:.1f}s) {client} {what}: {error}"
                )

    def _served(self, kind: str, took: float) -> None:
        with self._lock:
            self.tally.requests[kind] += 1
            if took > self.tally.slowest.get(kind, 0.0):
                self.tally.slowest[kind] = took

    def _keepalive(self, name: str) -> None:
        conn: RawConnection | None = None
        last_answer = 0.0
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                for ex in keepalive_exchanges(n):
                    if self._stop.is_set():
                        break
                    if conn is not None and time.monotonic() - last_answer > STALE_AFTER:
                        conn.close()
                        conn = None
                        with self._lock:
                            self.tally.stale_reconnects += 1
                    started = time.monotonic()
                    try:
                        if conn is None:
                            conn = connect(self.port)
                        conn.send(ex.request)
                        answers = [conn.read_response() for _ in ex.answers]
                    except Exception as exc:  # any error is the failure to report
                        self._fail(name, f"#{n} {ex.kind}", f"{type(exc).__name__}: {exc}")
                        if conn is not None:
                            conn.close()
                        conn = None
                        continue
                    last_answer = time.monotonic()
                    problems = [check(a, w) for a, w in zip(answers, ex.answers, strict=True)]
                    if any(problems):
                        self._fail(name, f"#{n} {ex.kind}", "; ".join(p for p in problems if p))
                        conn.close()
                        conn = None
                        continue
                    self._served(ex.kind, last_answer - started)
                    if any(a.headers.get("Connection", "").lower() == "close" for a in answers):
                        with self._lock:
                            self.tally.server_closes += 1
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()

    def _one_shots(self, name: str, offset: int) -> None:
        n = 0
        while not self._stop.is_set():
            kind, request, want, server_closes = ONE_SHOTS[(n + offset) % len(ONE_SHOTS)]
            n += 1
            started = time.monotonic()
            try:
                with connect(self.port) as conn:
                    conn.send(request)
                    got = conn.read_response()
                    problem = check(got, want)
                    if not problem and server_closes:
                        rest = conn.fp.read(1)  # the server must close: EOF, nothing more
                        if rest:
                            problem = f"the server sent {rest!r} after the answer, no close"
            except Exception as exc:  # any error is the failure to report
                self._fail(name, f"#{n} {kind}", f"{type(exc).__name__}: {exc}")
                continue
            if problem:
                self._fail(name, f"#{n} {kind}", problem)
            else:
                self._served(kind, time.monotonic() - started)


# ----------------------------------------------------------------------------- the sampler


@dataclass(frozen=True)
class ProcSample:
    rss_kib: int
    hwm_kib: int  # peak resident set since the process started
    fds: int


@dataclass
class Sample:
    at: float  # seconds since the soak began
    label: str
    procs: dict[int, ProcSample]


def proc_sample(pid: int) -> ProcSample | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ProcSample(int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0]), fds)


class Sampler(threading.Thread):
    """Samples the master and each worker every SAMPLE_EVERY seconds until stopped; notes
    workers that appear or go (by pid). `take_idle()` takes the baseline first."""

    def __init__(self, server: WsgidServer) -> None:
        super().__init__(name="sampler", daemon=True)
        self.server = server
        self.started = time.monotonic()
        self.idle = Sample(0.0, "idle", {})
        self.samples: list[Sample] = []
        self.workers_seen: list[int] = []
        self.changes: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def take_idle(self) -> None:
        self.idle = self._sample("idle")
        self.workers_seen = sorted(set(self.idle.procs) - {self.server.pid})

    def take(self, label: str = "") -> Sample:
        sample = self._sample(label)
        before = self.samples[-1] if self.samples else self.idle
        for pid in sorted(set(sample.procs) - set(before.procs)):
            self.changes.append(f"{sample.label}: new worker {pid}")
            self.workers_seen.append(pid)
        for pid in sorted(set(before.procs) - set(sample.procs)):
            self.changes.append(f"{sample.label}: worker {pid} gone")
        self.samples.append(sample)
        return sample

    def _sample(self, label: str) -> Sample:
        at = time.monotonic() - self.started
        pids = [self.server.pid, *self.server.worker_pids()]
        return Sample(at, label or f"+{at:.0f}s", {p: s for p in pids if (s := proc_sample(p))})

    def run(self) -> None:
        try:
            while not self.stop.wait(SAMPLE_EVERY):
                self.take()
        except BaseException as exc:  # reported by the soak, with its traceback
            self.error = exc


# ------------------------------------------------------------------------------- the rules


def mib(kib: int) -> float:
    return kib / 1024


def memory_problems(sampler: Sampler, master: int) -> list[str]:
    """Breaches of the two RSS rules (module docstring), one line per process and rule."""
    idle = sampler.idle
    idle_worker = max(s.rss_kib for pid, s in idle.procs.items() if pid != master)
    warm = next((s for s in sampler.samples if s.at >= WARM_UP), sampler.samples[-1])
    last = sampler.samples[-1]
    problems = []
    for pid in [master, *sampler.workers_seen]:
        base = idle.procs[pid].rss_kib if pid in idle.procs else idle_worker
        over = [s for s in sampler.samples if pid in s.procs]
        over = [s for s in over if mib(s.procs[pid].hwm_kib - base) > RSS_BUDGET_MIB]
        if over:
            peak = max(s.procs[pid].hwm_kib for s in over)
            problems.append(
                f"pid {pid}: peak RSS {mib(peak):.0f} MiB (first over at {over[0].label}), "
                f"more than idle {mib(base):.0f} + {RSS_BUDGET_MIB} MiB"
            )
        if pid in warm.procs and pid in last.procs:
            grew = mib(last.procs[pid].rss_kib - warm.procs[pid].rss_kib)
            if grew > RSS_GROWTH_MIB:
                problems.append(
                    f"pid {pid}: RSS grew {grew:.1f} MiB from {warm.label} (end of warm-up) to "
                    f"{last.label}, more than {RSS_GROWTH_MIB} MiB"
                )
    return problems


def wait_quiet(server: WsgidServer, sampler: Sampler) -> tuple[Sample, list[str]]:
    """Poll until every process's fds are back to idle (+ FD_SLACK) and WORKERS workers run;
    return the last sample taken and what was still off at the deadline."""
    idle = sampler.idle
    idle_worker_fds = max(s.fds for pid, s in idle.procs.items() if pid != server.pid)
    deadline = time.monotonic() + QUIESCE_TIMEOUT
    while True:
        workers = server.worker_pids()
        off = [] if len(workers) == WORKERS else [f"{len(workers)} workers: {workers}"]
        now = {pid: s for pid in [server.pid, *workers] if (s := proc_sample(pid))}
        for pid, s in now.items():
            base = idle.procs[pid].fds if pid in idle.procs else idle_worker_fds
            if s.fds > base + FD_SLACK:
                off.append(f"pid {pid} has {s.fds} fds open, {base} when idle")
        master_gone = not procs.is_alive(server.pid)
        if master_gone:
            off.append("the master exited")
        if not off or master_gone or time.monotonic() >= deadline:
            return sampler.take("after the soak"), off
        time.sleep(0.5)


# ----------------------------------------------------------------------------- the summary


def summary(
    kind: str,
    traffic: GoodTraffic,
    attacks: list[Attack],
    sampler: Sampler,
    master: int,
) -> str:
    good = traffic.tally
    lines = [
        f"## wsgid soak, worker kind `{kind}`: {SOAK_SECONDS:.0f} s, {WORKERS} workers",
        "",
        "| good request | answered as expected | slowest (s) |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {k} | {n} | {good.slowest.get(k, 0):.2f} |" for k, n in sorted(good.requests.items())
    ]
    lines += [
        f"| **total** | **{sum(good.requests.values())}** | |",
        "",
        f"Failed good requests: {good.failed}. Keep-alive reconnects after "
        f">{STALE_AFTER:.0f} s idle: {good.stale_reconnects}; answers with `Connection: close`"
        f" on keep-alive: {good.server_closes}.",
        "",
        "| attack | rounds | connections | outcomes | held by the server (s, max) |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for attack in attacks:
        t = attack.tally
        outcomes = "; ".join(f"{what}: {n}" for what, n in t.outcomes.most_common())
        held = f"{max(t.held):.1f}" if t.held else "-"
        lines.append(f"| {attack.name} | {t.rounds} | {t.connections} | {outcomes} | {held} |")
    pids = [master, *sampler.workers_seen]
    names = ["master"] + [f"worker {p}" for p in sampler.workers_seen]
    lines += [
        "",
        "RSS MiB (peak since start) / open fds, per sample and process:",
        "",
        "| sample | " + " | ".join(f"{n}" for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for sample in [sampler.idle, *sampler.samples]:
        cells = []
        for pid in pids:
            s = sample.procs.get(pid)
            cells.append(f"{mib(s.rss_kib):.1f} ({mib(s.hwm_kib):.0f}) / {s.fds}" if s else "-")
        lines.append(f"| {sample.label} | " + " | ".join(cells) + " |")
    if sampler.changes:
        lines += ["", "Workers replaced: " + "; ".join(sampler.changes)]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- the test


def warm(port: int) -> None:
    """Each good request a few times, so the idle sample counts what serving them imports."""
    with connect(port) as conn:
        for n in range(20):
            for ex in keepalive_exchanges(n):
                conn.send(ex.request)
                for want in ex.answers:
                    problem = check(conn.read_response(), want)
                    assert not problem, f"warming up, {ex.kind}: {problem}"


def wait_soak(server: WsgidServer, checks: Callable[[], None]) -> None:
    """SOAK_SECONDS, checking every second that the master runs and the harness is sound."""
    end = time.monotonic() + SOAK_SECONDS
    while time.monotonic() < end:
        server.check_running()
        checks()
        time.sleep(1.0)


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_good_traffic_is_answered_exactly_and_memory_stays_flat_through_rounds_of_attacks(
    kind: str, wsgid: Callable[..., WsgidServer]
) -> None:
    server = wsgid("soak_app:app", *kind_args(kind), workers=WORKERS)
    master = server.pid
    warm(server.port)
    sampler = Sampler(server)
    sampler.take_idle()

    stop = threading.Event()
    attacks: list[Attack] = [
        cls(server.port, stop)
        for cls in (HugeHeads, Slowloris, TrickledBodies, Malformed, ResetBursts, NonReaders)
    ]
    attackers = [Attacker(a) for a in attacks]
    traffic = GoodTraffic(server.port)
    threads: list[Attacker | Sampler] = [*attackers, sampler]

    def harness_sound() -> None:
        errors = [(t.name, t.error) for t in threads if t.error is not None]
        if errors:
            details = "\n".join(
                f"{name}:\n" + "".join(traceback.format_exception(error)) for name, error in errors
            )
            raise AssertionError(f"the soak's own clients failed:\n{details}")

    try:
        sampler.started = traffic.start().started
        sampler.start()
        for attacker in attackers:
            attacker.start()
        wait_soak(server, harness_sound)
    finally:
        # The summary is printed however the soak ended: it says what happened until then.
        stop.set()
        for attacker in attackers:
            attacker.join(30)
        traffic.stop()
        sampler.stop.set()
        sampler.join(10)
        last, not_quiet = wait_quiet(server, sampler)
        print("\n" + summary(kind, traffic, attacks, sampler, master) + "\n")
    harness_sound()
    still = [t.name for t in threads if t.is_alive()]
    assert not still, f"soak threads still running after stop: {still}"

    good = traffic.tally
    assert not good.failed, f"{good.failed} good requests failed (the first {MAX_DETAILS}):\n" + (
        "\n".join(good.failures)
    )
    unexpected = [u for a in attacks for u in a.tally.unexpected]
    assert not unexpected, "attacks were not answered as designed:\n" + "\n".join(unexpected[:50])
    memory = memory_problems(sampler, master)
    assert not memory, "memory did not stay flat:\n" + "\n".join(memory)
    assert not not_quiet, f"{QUIESCE_TIMEOUT:.0f} s after the soak: " + "; ".join(not_quiet)
    assert procs.cmdline(master).startswith("wsgid: master"), procs.cmdline(master)
    assert server.proc is not None and server.proc.poll() is None
    assert len(last.procs) == WORKERS + 1, last.procs
