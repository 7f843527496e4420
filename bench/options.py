"""The command line of `bench/run`: what to run, how long, and where the report goes."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from bench.layout import BENCH_DIR, WORK
from bench.prerequisites import EXIT_PREREQUISITE
from bench.scenarios import SCENARIOS, SERVERS, SMOKE_SCENARIOS, Scenario, Server


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


def parse_args(argv: Sequence[str] | None) -> Options:
    """Command-line options (see ``bench/run --help``)."""
    sc_names = [s.name for s in SCENARIOS]
    sv_names = [s.name for s in SERVERS]
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="wsgid's benchmark against gunicorn and granian (see docs/performance.md).",
        epilog=f"scenarios: {', '.join(sc_names)}; servers: {', '.join(sv_names)}. "
        f"Exit status {EXIT_PREREQUISITE}: wrk, HAProxy (for the scenarios behind it), openssl "
        "(for the TLS ones) or bench/.venv could not be installed, or the TLS certificate could "
        "not be made.",
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
