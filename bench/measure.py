"""The benchmark itself: idle memory and start-up, then interleaved wrk runs per scenario group."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.layout import log
from bench.options import Options
from bench.procfs import cpu_snapshot, foreign_share, group_pids, pss_kib, rss_kib
from bench.scenarios import Scenario, Server, applicable
from bench.server import Running, ServerFailed, check_answer, start_server
from bench.wrk import WrkResult, run_wrk, trickling


@dataclasses.dataclass
class Cell:
    """Results of one (scenario, server) pair across runs."""

    runs: list[WrkResult] = dataclasses.field(default_factory=list)
    failed: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    memory: str = ""  # idle: what holding the idle connections added to the workers' RSS

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


# Start-ups are cheap (a second or two each) and vary by ±20 % here: in a full run, more of
# them than the throughput runs, so that one slow start moves no median.
STARTUP_RUNS_MIN = 5


def measure_startup(opts: Options, workdir: Path) -> dict[str, StartupResult]:
    """Start each server ``runs`` times (round-robin; a full run at least STARTUP_RUNS_MIN):
    time to first answer, then idle PSS.

    A full run first starts each server once without recording it: the first start after an
    install reads every file from disk while the install's writes are still being flushed,
    and the rotation would always hand that start to the same server (the first in the list).
    Servers that require the PROXY protocol are left out: they are the plain ones with a flag.
    """
    servers = direct_servers(opts.servers)
    res = {s.name: StartupResult() for s in servers}
    os.sync()  # the install's dirty pages written out now, not during the first starts
    first = 0 if opts.smoke else -1
    for run in range(first, opts.runs if opts.smoke else max(opts.runs, STARTUP_RUNS_MIN)):
        for server in rotate(servers, run):
            r = res[server.name]
            if r.failed:
                continue
            try:
                running = start_server(server, "hello", 4, workdir, opts.start_timeout)
            except ServerFailed as e:
                r.failed = str(e)
                log(f"{server.label}: failed to start: {e}")
                continue
            if run < 0:  # the warm-up start
                running.stop()
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


def direct_servers(servers: Sequence[Server]) -> list[Server]:
    """The servers with a start-up row: the plain ones (a variant's feature is measured as a
    throughput figure against its plain twin)."""
    return [s for s in servers if not s.variant]


def rotate(seq: Sequence[Server], n: int) -> list[Server]:
    """``seq`` rotated by ``n`` places: each run starts with another server."""
    if not seq:
        return []
    n %= len(seq)
    return [*seq[n:], *seq[:n]]


def run_group(
    opts: Options, scenarios: list[Scenario], workdir: Path, cells: dict[tuple[str, str], Cell]
) -> None:
    """Start the servers for one group of scenarios, check, warm up, then run round-robin."""
    app, threads, haproxy, tls, idle = scenarios[0].group
    servers = [s for s in opts.servers if any(applicable(sc, s) for sc in scenarios)]
    running: dict[str, Running] = {}
    try:
        for server in servers:
            try:
                running[server.name] = start_server(
                    server, app, threads, workdir, opts.start_timeout, haproxy, tls, idle
                )
            except ServerFailed as e:
                log(f"{server.label} ({app}): failed: {e}")
                for sc in scenarios:
                    if applicable(sc, server):
                        cells[(sc.name, server.name)].failed = str(e)
        for sc in scenarios:  # check every answer, then warm up
            for server in servers:
                r = running.get(server.name)
                if r is None or not applicable(sc, server):
                    continue  # a group's servers need not serve each of its scenarios
                cell = cells[(sc.name, server.name)]
                if cell.failed:
                    continue
                try:
                    check_answer(r, sc)
                    if opts.warmup > 0:
                        run_wrk(dataclasses.replace(sc, slowloris=0, idle=0), r.port, opts.warmup)
                except (ServerFailed, RuntimeError, ValueError) as e:
                    cell.failed = f"check failed: {e}"
                    log(f"{sc.name} / {server.label}: {cell.failed}")
        for run in range(opts.runs):
            for sc in scenarios:
                for server in rotate(servers, run):
                    r = running.get(server.name)
                    if r is None or not applicable(sc, server):
                        continue
                    cell = cells[(sc.name, server.name)]
                    if not cell.failed:
                        measure_cell(opts, sc, r, cell, run)
    finally:
        for r in running.values():
            r.stop()


def measure_cell(opts: Options, sc: Scenario, r: Running, cell: Cell, run: int) -> None:
    """One wrk run of ``sc`` against ``r`` (with the trickler for slowloris, the idle holder
    for idle, and the workers' RSS growth for the idle connections)."""
    if not r.alive():
        cell.failed = f"server died: {r.why_dead()}"
        return
    log(f"run {run + 1}/{opts.runs}: {sc.name} / {r.server.label}")
    helpers = [r.haproxy.proc.pid] if r.haproxy else []
    before = cpu_snapshot(r.proc.pid, helpers)
    try:
        rss_before = workers_rss_kib(r)
        with trickling(r.port, sc.slowloris or sc.idle, idle=bool(sc.idle)) as stats:
            rss_held = workers_rss_kib(r)
            res = run_wrk(sc, r.port, opts.duration)
    except (RuntimeError, ValueError) as e:
        cell.failed = str(e)
        return
    after = cpu_snapshot(r.proc.pid, helpers)
    res.foreign_cpu = foreign_share(before, after)
    if res.requests:
        per_request = 1e6 / os.sysconf("SC_CLK_TCK") / res.requests
        res.cpu_user_us = (after.server_user - before.server_user) * per_request
        res.cpu_sys_us = (after.server_sys - before.server_sys) * per_request
    cell.runs.append(res)
    if stats and stats[0]:
        cell.notes.append(f"{'idle holder' if sc.idle else 'trickler'} {stats[0]}")
    if sc.idle and run == 0:
        # The first run only: the memory of a worker that held idle connections before stays
        # with it (the allocator keeps it), so later runs would show no growth.
        grown = rss_held - rss_before
        cell.memory = (
            f"worker RSS +{grown / 1024:.1f} MiB for {sc.idle} idle"
            f" ({grown * 1024 / sc.idle:,.0f} B each)"
        )
    if not r.alive():
        cell.failed = f"server died during the run: {r.why_dead()}"


def workers_rss_kib(r: Running) -> int:
    """The summed RSS of the server's processes but the one started (the master), in KiB."""
    return sum(rss_kib(pid) for pid in group_pids(r.proc.pid) if pid != r.proc.pid)
