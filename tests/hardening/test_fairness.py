"""A new client is served while keep-alive clients keep the worker busy.

One worker, an app taking 10 ms, 50 keep-alive clients (wrk -c50). The old sync worker
accepted one connection per loop turn while a turn served every ready keep-alive request
inline, so a new connection waited behind wrk's not-yet-accepted ones in the kernel's FIFO
accept queue: about 6.5 s, until the load stopped. Now a turn admits as many waiting
connections as it served, and the new client is answered while the load still runs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.client import poll
from support.kinds import kind_args
from support.server import WsgidServer

APP = "sleep_app:app"
CLIENTS = 50
LOAD_SECONDS = 12
BOUND = 3.0  # the old code: until the load stopped


def client_connections(port: int) -> int:
    """Established TCP connections from a client to 127.0.0.1:`port` (accepted or queued)."""
    count = 0
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = row.split()
        if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def test_a_new_client_is_served_while_keep_alive_clients_load_the_worker(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    server = wsgid(APP, *kind_args(kind), workers=1)
    load = subprocess.Popen(
        [wrk, "-t1", f"-c{CLIENTS}", f"-d{LOAD_SECONDS}s", f"{server.url}/sleep?s=0.01"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(
            lambda: client_connections(server.port) >= CLIENTS,
            timeout=10,
            what=f"{CLIENTS} wrk connections",
        )
        started = time.monotonic()
        resp = server.get("/pid", timeout=LOAD_SECONDS + 10)
        took = time.monotonic() - started
        still_loading = load.poll() is None
    finally:
        load.terminate()
        load.wait(timeout=10)
    assert resp.status == 200
    assert still_loading, f"the new client was answered only after the load ended ({took:.1f}s)"
    assert took < BOUND, f"the new client waited {took:.1f}s behind the keep-alive clients"
