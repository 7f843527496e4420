"""A serving master and its workers never import pydantic, at start or after a HUP reload;
nor the modules that only slow a start down (`dataclasses`, `inspect`).

Reading the configuration needs pydantic and the settings model; serving does not. `wsgid.cli`
reads the settings in a short-lived child process, so the master (and, by fork, every worker)
holds only a typed, plain copy of them (see `wsgid.runtime`). Importing pydantic would add about
11 MiB to a running server: these tests keep it out, without measuring any memory.

The worker is asked through an app that reports its own `sys.modules`; the master, whose
modules no request can see, through the shared objects mapped into it (pydantic always loads
its compiled core, `pydantic_core`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from support.load import wait_event
from support.server import WorkDir, WsgidServer

APP = "modules_app:app"
APP_SOURCE = """\
import gc
import json
import os
import sys


def app(environ, start_response):
    body = json.dumps({
        "modules": sorted(sys.modules),
        "frozen": gc.get_freeze_count(),
        "environ": sorted(os.environ),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""
# Modules a serving process must not have: what only reading the configuration needs.
CONFIG_ONLY = (
    "pydantic", "pydantic_core", "wsgid.settings", "tomllib", "argparse",
)  # fmt: skip
# Nor what serving could use but does not need (the Date header is formatted by wsgid itself).
NOT_NEEDED = ("email.utils",)
# Nor what only metrics, statsd and the side listeners need, when none of them is on (the
# control socket's default, "auto", looks for systemd's RuntimeDirectory: wsgid.control, small,
# is loaded to look).
OPERATIONS = (
    "prometheus_client", "wsgid.prometheus", "wsgid.app_metrics", "wsgid.statsd",
    "wsgid.side_listener", "http.client",
)  # fmt: skip
# Nor what only HTTPS listeners need, without one (`ssl` itself may come with a library).
TLS = ("wsgid.tls", "wsgid.workers.tls_connection")
# Nor what every start would pay for and serving never calls: `dataclasses` with the `inspect`
# it imports, 5 ms of a start on one CPU (wsgid's records are named tuples and plain classes),
# and structlog's processors, which bring them (the error log's are wsgid's own); nor
# `urllib.parse` (wsgid decodes a path's %-escapes itself), `random` (max_requests' jitter
# comes from os.urandom), and `queue`'s Python module (the gthread pool's queue is its C class).
START_COST = (
    "dataclasses", "inspect", "structlog.processors", "structlog.tracebacks",
    "urllib.parse", "random", "queue",
)  # fmt: skip


def start(wsgid: Callable[..., WsgidServer], workdir: WorkDir, *args: str) -> WsgidServer:
    """A server of one worker (the default count) serving the module-reporting app."""
    (workdir.cwd / "modules_app.py").write_text(APP_SOURCE)
    server = wsgid(APP, *args)
    server.wait_workers(1)
    return server


def worker_report(server: WsgidServer) -> dict[str, object]:
    resp = server.get("/")
    assert resp.status == 200, resp.text
    report = resp.json()
    assert isinstance(report, dict)
    return report


def maps_pydantic(pid: int) -> bool:
    return "pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def test_master_and_worker_serve_without_pydantic(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = start(wsgid, workdir)
    report = worker_report(server)
    modules = set(report["modules"])  # type: ignore[call-overload]
    assert not modules & set(CONFIG_ONLY), sorted(modules & set(CONFIG_ONLY))
    assert not modules & set(NOT_NEEDED), sorted(modules & set(NOT_NEEDED))
    assert not modules & set(OPERATIONS), sorted(modules & set(OPERATIONS))
    assert not modules & set(TLS), sorted(modules & set(TLS))
    assert not modules & set(START_COST), sorted(modules & set(START_COST))
    assert "PROMETHEUS_MULTIPROC_DIR" not in report["environ"]  # type: ignore[operator]
    assert not maps_pydantic(server.pid)
    (worker,) = server.worker_pids()
    assert not maps_pydantic(worker)


def test_reload_reads_the_new_configuration_without_importing_pydantic(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    config = workdir.root / "wsgid.toml"
    config.write_text("[workers]\nworkers = 1\n")
    server = start(wsgid, workdir, "--config", str(config))
    (old,) = server.worker_pids()
    config.write_text("[workers]\nworkers = 2\n")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", generation=2, timeout=30, check=server.check_running)
    assert old not in server.wait_workers(2, timeout=30)  # the count came from the new file
    assert not maps_pydantic(server.pid)
    modules = set(worker_report(server)["modules"])  # type: ignore[call-overload]
    assert not modules & set(CONFIG_ONLY)


def test_a_worker_keeps_what_it_inherits_out_of_its_cyclic_gc(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # gc.freeze() before each fork: a full collection in the worker would otherwise write to
    # every object inherited from the master, copying the pages it shares with it.
    server = start(wsgid, workdir)
    frozen = worker_report(server)["frozen"]
    assert isinstance(frozen, int) and frozen > 0
