"""Requests answered just before a worker dies are counted: a worker hands its counts to the
scoreboard before it waits idle, and before an exit on the master's timeout.

Workers count into their own lists and publish them to the shared-memory scoreboard a few
times a second while busy; the master folds a reaped worker's slot into its totals. Until
the counts were also published before each idle wait, a worker SIGKILLed right after a burst
had told the master of 1 or 2 of 21 requests. Read here through `/metrics` on the side
listener, as the Prometheus tests read it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.load import wait_event
from support.metrics import metric_sample
from support.server import WsgidServer, free_port

APP = "lifecycle_app:app"
ANSWERED = 20  # requests answered 404 on one keep-alive connection before the worker dies

# Linux x86_64 and aarch64 numbers of the system calls a loop waits idle in (epoll_wait
# and epoll_pwait(2), poll, ppoll, select, pselect6), whichever kind's hub makes the call.
_WAITS = {
    "x86_64": {232, 281, 441, 7, 271, 23, 270},
    "aarch64": {22, 441, 73, 72},
}[os.uname().machine]


def waits_idle(pid: int) -> bool:
    """Whether the worker's main thread (its loop, or the hub it waits in) is blocked in a
    wait for events: the turn that answered the last request is over."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            call = f.read().split()
    except OSError:
        return False
    return bool(call) and call[0].isdigit() and int(call[0]) in _WAITS


def answer_on_one_connection(server: WsgidServer, n: int) -> int:
    """`n` requests answered 404 on one keep-alive connection; the worker's pid."""
    conn = server.connection(timeout=10)
    pids = set()
    try:
        for _ in range(n):
            conn.request("GET", "/status?code=404")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 404, body
            pids.add(json.loads(body)["pid"])
    finally:
        conn.close()
    (pid,) = pids
    return int(pid)


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_requests_answered_right_before_a_sigkill_are_counted(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    port = free_port()
    server = wsgid(APP, *kind_args(kind), "--metrics-bind", f"127.0.0.1:{port}", workers=1)
    pid = answer_on_one_connection(server, ANSWERED)
    # The responses leave before the worker counts them (after the send), so the kill
    # waits for the end of the turn: the first moment the worker waits idle. Before, it
    # waited up to 0.2 s with the counts still its own.
    poll(lambda: waits_idle(pid), timeout=10, interval=0.001, what="the worker waiting idle")
    os.kill(pid, signal.SIGKILL)
    poll(
        lambda: pid not in server.worker_pids() and len(server.worker_pids()) == 1,
        timeout=20,
        what="the killed worker's replacement",
    )
    # The master folds a reaped worker's slot into its totals (the replacement counts 0).
    poll(
        lambda: metric_sample(port, "wsgid_requests_total", status_class="4xx") == ANSWERED,
        timeout=10,
        what=f"{ANSWERED} 4xx counted",
    )


def test_requests_answered_before_a_request_the_masters_timeout_ends_are_counted(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """sync: the quick requests, then one that sleeps past `timeout` on the same connection;
    the master aborts the worker, then kills it. Every quick one is counted."""
    port = free_port()
    server = wsgid(
        APP, "--timeout", "2", "--metrics-bind", f"127.0.0.1:{port}", workers=1
    )  # fmt: skip
    conn = server.connection(timeout=30)
    try:
        for _ in range(ANSWERED):
            conn.request("GET", "/status?code=404")
            resp = conn.getresponse()
            assert resp.status == 404
            resp.read()
        began = time.monotonic()
        conn.request("GET", "/sleep?s=8")
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(conn.getresponse)
            wait_event(server.errlog, "worker.timeout", timeout=15, check=server.check_running)
            with pytest.raises((http.client.HTTPException, OSError)):
                slow.result(timeout=15)
    finally:
        conn.close()
    assert time.monotonic() - began < 8  # ended by the timeout, not by the app
    poll(
        lambda: metric_sample(port, "wsgid_requests_total", status_class="4xx") == ANSWERED,
        timeout=10,
        what=f"{ANSWERED} 4xx counted",
    )
