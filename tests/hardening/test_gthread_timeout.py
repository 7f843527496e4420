"""A request stuck in the application is bounded on every worker kind: by `timeout` on sync
and gthread (the default), by `request_timeout` on the others (gthread's, when set).

- sync: the stuck request stops the heartbeat; the master dumps the worker's stack and
  replaces it (unchanged, asserted here so that both kinds are held to a bound).
- gthread: the loop keeps stamping the heartbeat, so the master cannot see a stuck thread.
  The worker reports the request (`worker.request_timeout` with the thread's stack) and
  answers it 503 while its other threads keep serving; with every thread stuck it exits and
  the master's replacement serves. The old worker never answered, and with every thread
  stuck it accepted connections it never served.
- gevent and eventlet: as gthread, but the request's greenlet is ended where it waits: the
  app's late response never exists, and the worker serves on however many requests time out.
  Only with `request_timeout`, which is off by default (test_cooperative_workers.py).
- tornado (a WSGI app, in its pool): as gthread, here with `request_timeout`, which takes
  `timeout`'s place in gthread's pool check.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import procs
from support.client import poll
from support.hooks import post_request_statuses
from support.load import events, wait_event
from support.server import Response, WorkDir, WsgidServer, free_port
from wsgid.workers import KINDS

APP = "lifecycle_app:app"
TIMEOUT = 3.0
MARGIN = 3.0  # the sweep runs once a second; the machine is loaded


def started(workdir: WorkDir, tag: str) -> float:
    """Poll until the request tagged `tag` is in the app; when it was seen there."""
    marker = workdir.markers / f"started-{tag}"
    poll(marker.exists, timeout=20, what=f"/stuck?tag={tag} in the app")
    return time.monotonic()


def serve(wsgid: Callable[..., WsgidServer], kind: str) -> tuple[WsgidServer, int]:
    """One worker of `kind` (gthread, and tornado's pool for a WSGI app: 2 threads) with the
    short limit (`timeout` for sync and gthread, else `request_timeout`); and its pid."""
    threads = ["--threads", "2"] if kind in ("gthread", "tornado") else []
    limit = "--timeout" if kind in ("sync", "gthread") else "--request-timeout"
    server = wsgid(APP, "--worker-class", kind, *threads, limit, str(TIMEOUT), workers=1)
    (worker,) = server.wait_workers(1)
    return server, worker


def until_closed(sock: socket.socket) -> bytes:
    """Everything the client gets on this connection, until it ends (a FIN or a reset)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_a_stuck_request_is_answered_or_its_worker_replaced_within_the_timeout(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    server, worker = serve(wsgid, kind)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(server.get, "/stuck?tag=a", timeout=60)
        stuck_at = started(workdir, "a")
        if kind == "sync":
            (dump,) = wait_event(server.errlog, "worker.timeout_dump", timeout=TIMEOUT + 15)
            assert time.monotonic() - stuck_at < TIMEOUT + MARGIN
            assert "stuck_view" in dump.text, dump.text
            assert first.exception(timeout=30) is not None  # the connection ended with it
        else:
            # The other thread serves meanwhile.
            assert server.get("/pid", timeout=TIMEOUT).json()["pid"] == worker  # type: ignore[index]
            resp: Response = first.result(timeout=TIMEOUT + 15)
            assert time.monotonic() - stuck_at < TIMEOUT + MARGIN
            assert resp.status == 503
            (report,) = wait_event(server.errlog, "worker.request_timeout")
            assert "stuck_view" in report.text, report.text
            assert report.get("path") == "/stuck", report.line
            assert report.get("answer") == "503", report.line
            assert server.get("/pid").json()["pid"] == worker  # type: ignore[index]
            if KINDS[kind].cooperative:
                # Ended, not left running: nothing stays stuck, the worker serves on.
                second = pool.submit(server.get, "/stuck?tag=b", timeout=60)
                started(workdir, "b")
                assert second.result(timeout=TIMEOUT + 15).status == 503
                assert server.get("/pid").json()["pid"] == worker  # type: ignore[index]
                assert server.worker_pids() == [worker]
                assert not events(server.errlog(), "worker.timeout")
                return
            # Now every thread: the worker cannot serve any more and is replaced.
            second = pool.submit(server.get, "/stuck?tag=b", timeout=60)
            started(workdir, "b")
            assert second.result(timeout=TIMEOUT + 15).status == 503
            wait_event(server.errlog, "worker.threads_stuck", timeout=TIMEOUT + 15)
    assert procs.wait_gone([worker], timeout=15) == []
    replacement = poll(
        lambda: [p for p in server.worker_pids() if p != worker], timeout=20, what="a new worker"
    )
    resp = server.get("/pid")
    assert resp.status == 200 and resp.json()["pid"] in replacement  # type: ignore[index]
    if kind != "sync":
        assert not events(server.errlog(), "worker.timeout")  # the worker left by itself


def test_a_slow_request_answered_503_never_sends_its_late_response(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    server, worker = serve(wsgid, kind)
    slow = TIMEOUT + 2.5  # past the timeout, but it does end
    with server.connect(timeout=slow + 15) as sock:
        sock.sendall(f"GET /sleep?s={slow}&tag=late HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        started(workdir, "late")
        received = until_closed(sock)
    if kind == "sync":
        # The master's timeout: the worker is killed and replaced; no answer at all.
        assert received == b""
        wait_event(server.errlog, "worker.timeout_dump", timeout=15)
        assert procs.wait_gone([worker], timeout=15) == []
        return
    assert received.startswith(b"HTTP/1.1 503 "), received[:300]
    assert received.count(b"HTTP/1.1 ") == 1, received  # the app's late 200 never came
    if KINDS[kind].cooperative:
        # The greenlet was ended where it slept: no late response to fail.
        (report,) = wait_event(server.errlog, "worker.request_timeout")
        assert report.get("answer") == "503", report.line
    else:
        # The thread finishes, its send fails, it hands the connection back, and the worker
        # goes on (the descriptor is closed; epoll does not keep reporting the dead socket).
        wait_event(server.errlog, "client.gone", timeout=15)
    cpu = procs.cpu_seconds(worker)
    resp = server.get("/pid")
    assert resp.json()["pid"] == worker  # type: ignore[index]
    time.sleep(2)  # the span over which the worker's CPU is measured
    after = procs.cpu_seconds(worker)
    assert cpu is not None and after is not None, "the worker exited"
    spent = after - cpu
    assert spent < 0.5, f"the worker used {spent:.2f}s of CPU in 2 s with nothing to do"
    assert server.worker_pids() == [worker]


def test_a_request_answered_503_for_its_timeout_is_logged_and_counted_once_as_503(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """One access record, for the 503 the client got (with the request's line and headers),
    and one count of it in the metrics: never the app's late 200, which was not sent."""
    if kind == "sync":
        pytest.skip("sync: the master's timeout replaces the worker; nothing is answered")
    access = workdir.logs / "access.log"
    side = f"127.0.0.1:{free_port()}"
    threads = ["--threads", "2"] if kind in ("gthread", "tornado") else []
    limit = "--timeout" if kind == "gthread" else "--request-timeout"
    server = wsgid(
        APP, "--worker-class", kind, *threads, limit, str(TIMEOUT), "--metrics-bind", side,
        "--access-logfile", str(access), "--access-logformat", "json", workers=1,
    )  # fmt: skip
    slow = TIMEOUT + 2.5  # it does end, and its thread's late response is then dropped
    agent = {"User-Agent": "timeout-probe/1"}
    answer = server.get(f"/sleep?s={slow}&tag=once", headers=agent, timeout=slow + 15)
    assert answer.status == 503

    def records() -> list[dict[str, object]]:
        lines = access.read_text().splitlines() if access.exists() else []
        return [json.loads(line) for line in lines]

    poll(lambda: [r for r in records() if r["path"] == "/sleep"], timeout=20, what="its record")
    if kind in ("gthread", "tornado"):  # the thread ends later: it must log nothing
        wait_event(server.errlog, "client.gone", timeout=slow + 15)
    (record,) = [r for r in records() if r["path"] == "/sleep"]
    assert (record["status"], record["method"]) == (503, "GET"), record
    assert record["query"] == f"s={slow}&tag=once", record
    assert record["user_agent"] == "timeout-probe/1", record
    # The metrics count what the log says was answered (the harness's readiness probes too).
    answered = {"2xx": 0.0, "5xx": 0.0}
    for r in records():
        answered[f"{r['status']}"[0] + "xx"] += 1

    def counted() -> bool:
        text = urllib.request.urlopen(f"http://{side}/metrics", timeout=10).read().decode()
        found = dict(re.findall(r'wsgid_requests_total\{status_class="(\dxx)"\} (\S+)', text))
        return all(float(found.get(k, 0)) == v for k, v in answered.items())

    poll(counted, timeout=20, what=f"the metrics to count {answered}")
    assert server.stop() == 0, server.errlog()


def test_a_file_download_cut_at_the_time_limit_says_so_not_that_the_client_left(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """gthread bounds a whole request by `timeout`, a sendfile download to a client that does
    not read included: the log says the request reached its limit, not that the client went."""
    big = workdir.root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)
    server = wsgid(
        "big_file_app:app", "--worker-class", "gthread", "--threads", "2", "--timeout",
        str(TIMEOUT), env={"TESTAPP_BIG_FILE": str(big)}, workers=1,
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # and read nothing
        (gone,) = wait_event(server.errlog, "client.gone", timeout=TIMEOUT + 20)
    assert "reached its time limit" in (gone.get("error") or ""), gone.line
    assert server.stop() == 0


def test_post_request_sees_the_503_a_timed_out_request_got_not_the_apps_late_status(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """The worker answers 503 in the app's place; the app's late 200 (gthread's, tornado's
    pool thread's) never reaches the client, and a greenlet is ended where it waits. Either
    way the `post_request` hook is called once, told of the 503 the client got."""
    if kind == "sync":
        pytest.skip("sync: the master's timeout replaces the worker; nothing is answered")
    hook_log = workdir.root / "hooks.jsonl"
    threads = ["--threads", "2"] if kind in ("gthread", "tornado") else []
    limit = "--timeout" if kind == "gthread" else "--request-timeout"
    server = wsgid(
        APP, "--worker-class", kind, *threads, limit, str(TIMEOUT),
        "--post-request", "hooks_recorder:post_request", workers=1,
        env={"TESTAPP_HOOK_LOG": str(hook_log)},
    )  # fmt: skip
    slow = TIMEOUT + 2.5  # it does end, after the 503 (unless its greenlet is ended)
    answer = server.get(f"/sleep?s={slow}&tag=hook", timeout=slow + 15)
    assert answer.status == 503

    def seen() -> list[object]:
        return post_request_statuses(hook_log, "/sleep")

    assert poll(seen, timeout=slow + 15, what="post_request for /sleep") == [503]
    # Once: a graceful stop lets whatever still runs for it end, with no second call.
    assert server.stop() == 0, server.errlog()
    assert seen() == [503]


def test_post_request_sees_the_apps_status_when_a_timed_out_response_that_began_is_cut(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    """Past `request_timeout` with its head sent, a greenlet's response is cut (a 503 after
    it would read as the next response): the `post_request` hook is called once, with the
    app's status, which is what the client got the head of. (gthread and tornado's pool
    count their limit from the client's last progress, not from the request's start.)"""
    if not KINDS[kind].cooperative:
        pytest.skip("the greenlet kinds: a pool thread's limit counts from its last send")
    hook_log = workdir.root / "hooks.jsonl"
    server = wsgid(
        APP, "--worker-class", kind, "--request-timeout", str(TIMEOUT),
        "--post-request", "hooks_recorder:post_request", workers=1,
        env={"TESTAPP_HOOK_LOG": str(hook_log)},
    )  # fmt: skip
    slow = TIMEOUT + MARGIN + 2
    with server.connect(timeout=slow + 15) as sock:
        sock.sendall(f"GET /drip?s={slow}&tag=cut HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 "), received[:300]
    assert b"first" in received and b"rest" not in received, received
    assert not received.endswith(b"0\r\n\r\n"), received  # cut: no last chunk

    def seen() -> list[object]:
        return post_request_statuses(hook_log, "/drip")

    assert poll(seen, timeout=slow + 15, what="post_request for /drip") == [200]
    assert server.stop() == 0, server.errlog()
    assert seen() == [200]
