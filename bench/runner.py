"""wsgid's benchmark driver, run as `bench/run` (or `make bench`); see docs/performance.md.

It installs its baselines (pinned gunicorn and granian, plus wsgid from this repo, and bjoern when
its C extension can be built) into ``bench/.venv`` and wrk (and HAProxy, for the scenarios behind
it, and openssl, for the TLS ones, whose certificate it makes) through apt, then runs every
server with one worker pinned to CPU 1 while wrk (and the slowloris trickler, and HAProxy) runs
pinned to CPU 0, over loopback only. Each server's answer
is checked (status and body) before it is loaded. Runs are interleaved round-robin across
servers so that drift hits all of them alike; medians are reported. It also measures idle memory
(PSS of the server's whole process group: master + 1 worker) and start-up time to the first
response.

The result is a markdown table printed on stdout and written to ``bench/RESULTS.md`` (or
``--out``), with versions, the machine and the command lines. A server that fails to start or to
answer is reported as "failed" with the reason and the run goes on. Every process started is
killed at the end, also on error or Ctrl-C.

Standard library only: it runs under any Python >= 3.10; the servers run in ``bench/.venv``.
This module is the run from start to end; the parts it calls each have a module of ``bench``:
``layout`` (files, CPUs, progress), ``options`` (command line), ``prerequisites`` (wrk, HAProxy,
openssl, the venv and the TLS certificate), ``scenarios`` (servers and load patterns),
``processes`` (process groups and signals), ``server`` (start and check one server), ``haproxy``
(the proxy in front of a server for the scenarios behind one), ``wrk`` (the load and the
trickler), ``procfs`` (memory and CPU counters), ``measure`` (the runs) and ``report`` (markdown
and JSON).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.layout import REPO, VENV_PY, WORK, log
from bench.measure import Cell, direct_servers, measure_startup, run_group
from bench.options import parse_args
from bench.prerequisites import (
    EXIT_PREREQUISITE,
    PrerequisiteError,
    ensure_bjoern,
    ensure_tool,
    ensure_venv,
    make_certificate,
)
from bench.processes import Interrupted, install_signal_handlers, kill_all
from bench.procfs import cpu_busy
from bench.report import render, to_json, versions
from bench.scenarios import Scenario, applicable

BUSY_CPU = 0.15  # CPUs busy before the run above which a warning is logged


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `bench/run`."""
    opts = parse_args(argv)
    install_signal_handlers()
    WORK.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=WORK))
    tls = any(sc.tls for sc in opts.scenarios)
    tools = [
        "wrk",
        *(["haproxy"] if any(sc.haproxy for sc in opts.scenarios) else []),
        *(["openssl"] if tls else []),
    ]
    try:
        if opts.install:
            for tool in tools:
                ensure_tool(tool)
            ensure_venv()
            if any(s.family == "bjoern" for s in opts.servers):
                why = ensure_bjoern()
                if why:  # its row says "failed", with the import error
                    log(f"bjoern cannot be installed, its row will fail: {why}")
        elif not (all(shutil.which(t) for t in tools) and VENV_PY.exists()):
            raise PrerequisiteError(f"--no-install: {', '.join(tools)} or bench/.venv is missing")
        if tls:
            make_certificate(workdir)
        t0 = time.monotonic()
        meta = versions("haproxy" in tools)
        before = cpu_busy()
        meta["busy_before"] = f"{before:.0%}"
        if before > BUSY_CPU:
            log(f"warning: the machine is busy ({before:.0%} of its CPU time)")
        meta["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        meta["mode"] = "smoke mode" if opts.smoke else "full mode"
        meta["argv"] = " ".join(["bench/run", *(sys.argv[1:] if argv is None else argv)])
        log(
            f"idle memory and start-up ({len(direct_servers(opts.servers))} servers, "
            f"{opts.runs} runs each)"
        )
        startup = measure_startup(opts, workdir)
        cells = {
            (sc.name, sv.name): Cell()
            for sc in opts.scenarios
            for sv in opts.servers
            if applicable(sc, sv)
        }
        groups: dict[tuple[str, int, bool, bool, int], list[Scenario]] = {}
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
