"""The results: the markdown report (tables, environment, command lines) and the raw JSON."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench import haproxy
from bench.layout import CLIENT_CPU, HOST, REPO, SERVER_CPU, VENV_PY, WORK
from bench.measure import Cell, StartupResult, direct_servers
from bench.options import Options
from bench.prerequisites import certificate_commands
from bench.scenarios import Server, applicable, plain_twin

TIMES = "\u00d7"  # the multiplication sign of ratios
FOREIGN_CPU = 0.05  # other processes' share of the CPUs during a run above which it is noted
NOISY_RUNS = 0.10  # the report warns when more than this share of the runs were noted so
PROXY_TEXT = (
    "Behind HAProxy (`tcp` mode, pinned with wrk, one thread), wsgid is run both plain and with "
    "`--proxy-protocol v2` (HAProxy's `send-proxy-v2`); the notes of the PROXY v2 row give its "
    "req/s and CPU µs/req over the plain row's: the cost of the PROXY protocol. HAProxy and wrk "
    "share their CPU, which is then the limit: the req/s ratio follows the client side's noise "
    "more than wsgid's cost, which the CPU ratio shows (see docs/performance.md)."
)
TLS_TEXT = (
    "Over TLS (the `tls-*` scenarios), wrk talks HTTPS to every server, each with its own TLS "
    "settings on the same self-signed ECDSA P-256 certificate made for the run (wsgid and "
    "gunicorn `--certfile`/`--keyfile`, granian `--ssl-certificate`/`--ssl-keyfile`); bjoern has "
    "no TLS. With `Connection: close`, wrk resumes the TLS session of its previous connection "
    "(TLS 1.3 session tickets) where the server allows it: wsgid and granian do, so most of "
    "their handshakes are abbreviated ones; gunicorn builds an `SSLContext` per connection, so "
    "each of its handshakes is a full one."
)


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


def cpu_total(cell: Cell) -> float | None:
    """The median user + system CPU µs per request of a cell."""
    return None if cell.cpu_us is None else sum(cell.cpu_us)


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
    if cell.memory:
        notes.append(cell.memory)
    return "; ".join(notes)


def peer_name(server: Server) -> str | None:
    """The gunicorn server of the same worker kind as a wsgid server."""
    return f"gunicorn-{server.kind}" if server.family == "wsgid" else None


def _rps(
    cells: dict[tuple[str, str], Cell], scenario: str, server: str, chosen: dict[str, Server]
) -> float | None:
    """The req/s of ``server`` in ``scenario``, if it was chosen and ran it."""
    cell = cells.get((scenario, server)) if server in chosen else None
    return cell.rps if cell else None


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
        "kind and thread count, granian (one worker, its default growing WSGI thread pool), and "
        "bjoern (C on libev, one process and thread: what a request costs without Python in the "
        "server). "
        "CPU µs/req is the server's CPU time (its whole process group, all threads, from /proc) "
        "per completed request, user + system: what a request costs even when the server is not "
        "the bottleneck.",
        "",
        *([PROXY_TEXT, ""] if any(sc.haproxy for sc in opts.scenarios) else []),
        *([TLS_TEXT, ""] if any(sc.tls for sc in opts.scenarios) else []),
        "## Throughput and latency",
        "",
        "| scenario | server | req/s | p99 | CPU µs/req | wsgid / gunicorn (same kind) "
        "| wsgid / granian | wsgid / bjoern | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for sc in opts.scenarios:
        for server in opts.servers:
            if not applicable(sc, server):
                continue
            cell = cells[(sc.name, server.name)]
            label = server.label
            if server.kind == "gthread":
                label += f" ({sc.threads} threads)"
            vs_gunicorn = vs_granian = vs_bjoern = ""
            if server.family == "wsgid":
                peer = peer_name(server)
                pc = cells.get((sc.name, peer)) if peer in by_name else None
                vs_gunicorn = fmt_ratio(cell.rps, pc.rps if pc else None)
                vs_granian = fmt_ratio(cell.rps, _rps(cells, sc.name, "granian", by_name))
                vs_bjoern = fmt_ratio(cell.rps, _rps(cells, sc.name, "bjoern", by_name))
            notes = cell_notes(cell)
            twin = plain_twin(server)
            if twin is not None and cell.rps is not None:
                plain = cells.get((sc.name, twin.name))
                if plain is not None and plain.rps:
                    what = (
                        f"{server.access_log} access log / none"
                        if server.access_log
                        else "metrics listener, statsd and memory limit / none"
                        if server.operated
                        else f"PROXY {server.proxy} / plain (through HAProxy)"
                    )
                    notes = (
                        f"{what}: "
                        f"{fmt_ratio(cell.rps, plain.rps)} req/s, "
                        f"{fmt_ratio(cpu_total(cell), cpu_total(plain))} CPU µs/req"
                        + (f"; {notes}" if notes else "")
                    )
            if (sc.slowloris or sc.idle) and cell.rps is not None:
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
                f"| {vs_bjoern} | {notes} |"
            )
    starts = max((len(r.startup_s) for r in startup.values()), default=0)
    lines += [
        "",
        "## Idle memory and start-up",
        "",
        "PSS summed over the server's process group (master + 1 worker) after one request and 1 s "
        "idle; start-up is the time from spawning the server to its first good answer to `GET /` "
        f"(polled every 5 ms). Medians of {starts} starts of each server, in rotation"
        + ("." if opts.smoke else ", after one start of each that is not counted."),
        "",
        "| server | idle PSS | processes | wsgid / gunicorn PSS | start-up | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for server in direct_servers(opts.servers):
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
        f"- machine: {meta['nproc']} CPUs, {meta['cpu']}; Linux {meta['kernel']}; "
        f"virtualisation: {meta['virt']}",
        f"- Python {meta['python']} (servers, bench/.venv), {meta['openssl']}",
        f"- wsgid {meta['wsgid']}; gunicorn {meta['gunicorn']}; granian {meta['granian']}; "
        f"bjoern {meta['bjoern']}; gevent {meta['gevent']}; eventlet {meta['eventlet']}; "
        f"tornado {meta['tornado']}; "
        f"{meta['wrk']}" + (f"; {meta['haproxy']}" if "haproxy" in meta else ""),
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
            cmd = server.command(sc.app, 0, sc.threads, tls=sc.tls, idle=sc.idle)
            text = " ".join([*(f"{k}={v}" for k, v in server.env), *cmd])
            text = text.replace(f"{HOST}:0", f"{HOST}:PORT")
            text = text.replace("--port 0", "--port PORT").replace(str(REPO) + "/", "")
            if text not in seen:
                seen.add(text)
                lines.append(text)
    if any(sc.tls for sc in opts.scenarios):
        lines += [
            "```",
            "",
            "The TLS scenarios' certificate and key, made at the start of the run (in its own "
            "directory under bench/.work):",
            "",
            "```",
            *(" ".join(cmd).replace(str(REPO) + "/", "") for cmd in certificate_commands(WORK)),
        ]
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
        if sc.idle:
            lines.append(
                f"python bench/trickle.py --port PORT --conns {sc.idle} --idle "
                "--connect-timeout 30  # started before wrk, stopped after"
            )
        lines.append(wrk)
    lines += ["```", ""]
    proxied = {
        s.proxy for sc in opts.scenarios if sc.haproxy for s in opts.servers if applicable(sc, s)
    }
    if proxied:
        lines += [
            f"HAProxy in front of each server of the scenarios behind it (`taskset -c "
            f"{CLIENT_CPU} {' '.join(haproxy.command('CFG'))}`), CFG:",
            "",
            "```",
            haproxy.config("PORT", "SERVER_PORT", "").rstrip("\n"),
            "```",
            "",
        ]
        if "v2" in proxied:
            lines += [
                "with `send-proxy-v2` at the end of its `server` line for the PROXY v2 servers.",
                "",
            ]
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return f"'{arg}'" if re.search(r"[\s;*?()<>&|\"]", arg) else arg


def versions(with_haproxy: bool) -> dict[str, str]:
    """Versions of the servers (from bench/.venv), wrk (and HAProxy), and the machine."""
    meta: dict[str, str] = {}
    code = (
        "import importlib.metadata as m, platform, json\n"
        "v = {}\n"
        "for p in ('wsgid', 'gunicorn', 'granian', 'bjoern', 'gevent', 'eventlet', 'tornado'):\n"
        "    try: v[p] = m.version(p)\n"
        "    except Exception: v[p] = 'not installed'\n"
        "import wsgid\n"
        "v['wsgid'] += f' ({wsgid.build()})'\n"
        "v['python'] = platform.python_version()\n"
        "import ssl\n"
        "v['openssl'] = ssl.OPENSSL_VERSION\n"
        "print(json.dumps(v))\n"
    )
    r = subprocess.run([str(VENV_PY), "-c", code], capture_output=True, text=True)
    meta.update(json.loads(r.stdout) if r.returncode == 0 else {})
    packages = ("wsgid", "gunicorn", "granian", "bjoern", "gevent", "eventlet", "tornado")
    for k in (*packages, "python", "openssl"):
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
    if with_haproxy:
        meta["haproxy"] = haproxy.version()
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    meta["cpu"] = cpu
    meta["nproc"] = str(os.cpu_count())
    meta["kernel"] = platform.release()
    meta["virt"] = virtualisation()
    return meta


def virtualisation() -> str:
    """What the machine runs in: the hypervisor and the container, as systemd-detect-virt names
    them, or what /proc/cpuinfo tells without it. Timings on a VM differ from bare metal's."""
    found: list[str] = []
    if shutil.which("systemd-detect-virt"):
        for scope, what in (("--vm", "VM"), ("--container", "container")):
            r = subprocess.run(["systemd-detect-virt", scope], capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip():
                found.append(f"{what} {r.stdout.strip()}")
        return ", ".join(found) or "none detected"
    with contextlib.suppress(OSError):
        if " hypervisor" in Path("/proc/cpuinfo").read_text():
            return "VM (hypervisor flag in /proc/cpuinfo)"
    return "unknown"


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
