"""The side listener (metrics_bind): /livez and /readyz, and the drain of shutdown_delay.

Real masters and workers, probes over real sockets (http.client, raw bytes for the malformed
request). The drain test is the Kubernetes rollout in small: a load balancer that stops
sending at the first 503 from /readyz must see no failed request while the server stops.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import procs
from support.client import poll
from support.load import (
    LoadLoop,
    events,
    listening_inodes,
    same,
    socket_inodes,
    wait_event,
    wait_pidfile,
)
from support.server import WorkDir, WsgidServer, free_port

APP = "lifecycle_app:app"


def probe(
    port: int, path: str, method: str = "GET", unix: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to the side listener: (status, headers in lower case, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    if unix is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(unix)
        conn.sock = sock
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def readyz(port: int) -> int:
    return probe(port, "/readyz")[0]


def test_livez_and_readyz_answer_on_their_own_address_and_close(
    wsgid: Callable[..., WsgidServer],
) -> None:
    side = free_port()
    server = wsgid(APP, "--metrics-bind", f"127.0.0.1:{side}", workers=2)
    server.wait_workers(2)
    status, headers, body = probe(side, "/livez")
    assert (status, body) == (200, b"ok\n")
    assert headers["connection"] == "close" and headers["cache-control"] == "no-store"
    assert poll(lambda: readyz(side) == 200, timeout=10, what="/readyz 200")
    assert probe(side, "/readyz")[2] == b"ready\n"
    status, headers, body = probe(side, "/readyz", "HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", "6")
    assert probe(side, "/metrics-not-yet")[0] == 404
    status, headers, _ = probe(side, "/readyz", "POST")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    # The app's listener knows nothing of these paths; the side listener nothing of the app.
    answer = server.get("/livez").json()
    assert isinstance(answer, dict) and answer["path"] == "/livez"
    log = server.errlog()
    (started,) = events(log, "master.started")
    assert started.fields["health"] == f"http://127.0.0.1:{side}"


def test_a_malformed_probe_gets_a_400_and_a_closed_connection(
    wsgid: Callable[..., WsgidServer],
) -> None:
    side = free_port()
    server = wsgid(APP, "--metrics-bind", f"127.0.0.1:{side}", workers=1)
    server.wait_workers(1)
    with socket.create_connection(("127.0.0.1", side), timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"\r\nConnection: close\r\n" in answer
    # A probe that sends nothing is closed at its deadline, and never holds the master.
    with socket.create_connection(("127.0.0.1", side), timeout=10) as silent:
        assert probe(side, "/livez")[0] == 200
        started = time.monotonic()
        assert silent.recv(1) == b""
        assert time.monotonic() - started < 9
    server.check_running()


def test_readyz_is_503_while_the_first_workers_boot_and_livez_200(
    wsgid: Callable[..., WsgidServer],
) -> None:
    side = free_port()
    server = wsgid(
        "slow_import_app:app",
        "--metrics-bind", f"127.0.0.1:{side}",
        workers=1,
        env={"SLOW_IMPORT_SECONDS": "3"},
        start=False,
    )  # fmt: skip
    poll(lambda: _answers(side), timeout=15, what="the side listener")
    status, _, body = probe(side, "/readyz")
    assert status == 503 and body.startswith(b"not ready: "), body
    assert probe(side, "/livez")[0] == 200
    server.wait_ready(timeout=30)
    poll(lambda: readyz(side) == 200, timeout=10, what="/readyz 200 once booted")


def _answers(port: int) -> bool:
    try:
        probe(port, "/livez")
    except OSError:
        return False
    return True


def test_shutdown_delay_drains_a_load_balancer_without_one_failed_request(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """TERM turns /readyz to 503 while the app keeps serving for shutdown_delay; a client
    that stops at the first 503, as a load balancer does, sees no failure; then the server
    stops gracefully and exits 0."""
    side = free_port()
    delay = 3.0
    server = wsgid(
        APP, "--metrics-bind", f"127.0.0.1:{side}", "--shutdown-delay", str(delay), workers=2
    )
    server.wait_workers(2)
    poll(lambda: readyz(side) == 200, timeout=10, what="/readyz 200")
    first_503 = threading.Event()
    probe_errors: list[str] = []

    def balancer() -> None:
        while not first_503.is_set():
            try:
                if readyz(side) == 503:
                    first_503.set()
            except OSError as exc:
                probe_errors.append(repr(exc))
                return
            time.sleep(0.05)  # a probe period, not a wait for a condition

    checker = threading.Thread(target=balancer, daemon=True)
    checker.start()
    load = LoadLoop(server.port, keepalive=2, fresh=2).start()
    try:
        load.wait_served(50)
        term_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert first_503.wait(10), f"/readyz never turned 503: {probe_errors}"
        # The app still serves after the probe turned: what arrives meanwhile is answered.
        load.wait_served(20, since=time.monotonic())
    finally:
        stats = load.stop()
        checker.join(10)
    assert not stats.failures, stats.summary() + "\n" + server.errlog()
    assert not probe_errors, probe_errors
    assert server.wait_exit(timeout=delay + 30) == 0
    log = server.errlog()
    (draining,) = events(log, "master.draining")
    assert float(draining.fields["seconds"]) == delay
    (stopping,) = events(log, "master.stopping")
    held = _at(stopping.time) - _at(draining.time)
    assert held >= delay - 0.05, f"listeners closed {held:.2f} s after TERM, delay {delay}"
    assert time.monotonic() - term_at >= delay


def _at(stamp: str) -> float:
    """Seconds of an error-log timestamp (`2026-12-03T04:45:30.454Z`) since midnight."""
    clock = stamp.split("T", 1)[1].rstrip("Z")
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_cuts_the_shutdown_delay_short(
    wsgid: Callable[..., WsgidServer], second: signal.Signals
) -> None:
    side = free_port()
    server = wsgid(APP, "--metrics-bind", f"127.0.0.1:{side}", "--shutdown-delay", "60", workers=1)
    server.wait_workers(1)
    server.send_signal(signal.SIGTERM)
    wait_event(server.errlog, "master.draining")
    assert readyz(side) == 503
    assert server.get("/pid").status == 200, "the app serves while the delay runs"
    server.send_signal(second)
    assert server.wait_exit(timeout=20) == 0
    (stopping,) = events(server.errlog(), "master.stopping")
    assert stopping.fields["signal"] == second.name
    assert same(stopping.get("graceful"), second == signal.SIGTERM)


def test_hup_during_the_delay_is_ignored_and_logged(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, "--shutdown-delay", "60", workers=1)
    server.wait_workers(1)
    server.send_signal(signal.SIGTERM)
    wait_event(server.errlog, "master.draining")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "master.signal_ignored", signal="SIGHUP")
    assert not events(server.errlog(), "reload.started")
    server.send_signal(signal.SIGINT)
    assert server.wait_exit(timeout=20) == 0


def test_side_listener_on_a_unix_socket_is_removed_at_stop(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    path = workdir.root / "health.sock"
    server = wsgid(APP, "--metrics-bind", f"unix:{path}", workers=1)
    server.wait_workers(1)
    assert probe(0, "/livez", unix=str(path))[0] == 200
    poll(lambda: probe(0, "/readyz", unix=str(path))[0] == 200, timeout=10, what="ready")
    assert server.stop() == 0
    assert not path.exists()


def test_workers_hold_no_copy_of_the_side_listener(wsgid: Callable[..., WsgidServer]) -> None:
    """Probes are the master's: a worker holding the socket could keep it (or a probe's
    connection) open after the master closed it."""
    side = free_port()
    server = wsgid(APP, "--metrics-bind", f"127.0.0.1:{side}", workers=2)
    workers = server.wait_workers(2)
    (inode,) = listening_inodes(side)
    assert inode in socket_inodes(server.pid)
    for pid in workers:
        assert inode not in socket_inodes(pid), f"worker {pid} holds the side listener"


def test_hup_moves_the_side_listener_to_a_new_address(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    first, second = free_port(), free_port()
    config = workdir.root / "wsgid.toml"
    config.write_text(f'[monitoring]\nmetrics_bind = "127.0.0.1:{first}"\n')
    server = wsgid(APP, "-c", str(config), workers=1)
    server.wait_workers(1)
    assert probe(first, "/livez")[0] == 200
    config.write_text(f'[monitoring]\nmetrics_bind = "127.0.0.1:{second}"\n')
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "health.changed", health=f"http://127.0.0.1:{second}")
    assert probe(second, "/livez")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        probe(first, "/livez")


def test_usr2_hands_the_side_listener_over_and_the_old_master_skips_the_delay(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The new master adopts the same socket (no second bind, which would fail); the old
    one, stopped after the upgrade, does not drain: the new master serves on."""
    side = free_port()
    pid_path = workdir.root / "wsgid.pid"
    server = wsgid(
        APP, "--metrics-bind", f"127.0.0.1:{side}", "--shutdown-delay", "60",
        "--pid", str(pid_path), workers=1,
    )  # fmt: skip
    server.wait_workers(1)
    (inode,) = listening_inodes(side)
    server.send_signal(signal.SIGUSR2)
    new_master = wait_pidfile(Path(f"{pid_path}.2"), timeout=30)
    try:
        wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
        assert listening_inodes(side) == [inode]
        assert inode in socket_inodes(new_master)
        assert server.stop(signal.SIGTERM, timeout=20) == 0
        assert not events(server.errlog(), "master.draining", pid=server.pid)
        poll(lambda: readyz(side) == 200, timeout=10, what="the new master's /readyz")
        assert listening_inodes(side) == [inode]
    finally:
        if procs.is_alive(new_master):
            os.kill(new_master, signal.SIGINT)
            assert procs.wait_gone([new_master], timeout=20) == []


def test_a_hup_whose_side_address_cannot_be_bound_fails_and_keeps_the_old_one(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    first = free_port()
    config = workdir.root / "wsgid.toml"
    config.write_text(f'[monitoring]\nmetrics_bind = "127.0.0.1:{first}"\n')
    server = wsgid(APP, "-c", str(config), workers=1)
    server.wait_workers(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        config.write_text(f'[monitoring]\nmetrics_bind = "127.0.0.1:{busy}"\n')
        server.send_signal(signal.SIGHUP)
        (failed,) = wait_event(server.errlog, "reload.failed", timeout=30)
    assert f"127.0.0.1:{busy}" in failed.fields["error"], failed.text
    assert probe(first, "/livez")[0] == 200
    assert not events(server.errlog(), "health.changed")
    assert not events(server.errlog(), "reload.started")


def test_a_flood_of_idle_connections_cannot_keep_a_probe_out(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """200 connections to the side listener that never send a byte (more than it holds at
    once): each new connection closes the oldest, so probes are still answered, at once."""
    side = free_port()
    server = wsgid(APP, "--metrics-bind", f"127.0.0.1:{side}", workers=1)
    server.wait_workers(1)
    flood = [socket.create_connection(("127.0.0.1", side), timeout=5) for _ in range(200)]
    try:
        for _ in range(5):
            started = time.monotonic()
            assert probe(side, "/livez")[0] == 200
            assert time.monotonic() - started < 2.0
        assert server.get("/pid").status == 200
        server.check_running()
    finally:
        for sock in flood:
            sock.close()


def slow_ready_server(wsgid: Callable[..., WsgidServer], workers: int) -> tuple[WsgidServer, int]:
    """A server whose app takes a second to import (a worker's boot is observable), with its
    side listener; returned once /readyz says 200, with the side listener's port."""
    side = free_port()
    server = wsgid(
        "slow_import_app:app",
        "--metrics-bind", f"127.0.0.1:{side}",
        workers=workers,
        env={"SLOW_IMPORT_SECONDS": "1"},
    )  # fmt: skip
    poll(lambda: readyz(side) == 200, timeout=10, what="/readyz 200")
    return server, side


def test_readyz_stays_200_while_one_of_two_workers_is_replaced(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """Readiness is whether traffic is served, not at what capacity: with one worker of two
    dead and its successor importing the app (for a second), the other serves, and /readyz
    says 200 throughout. (It said `1 of 2 workers booted`: under load with max_requests, a
    server whose app imports slowly was out of rotation most of the time.)"""
    server, side = slow_ready_server(wsgid, workers=2)
    lost, kept = server.wait_workers(2)
    os.kill(lost, signal.SIGKILL)
    successor = poll(
        lambda: [p for p in server.worker_pids() if p not in (lost, kept)] or None, timeout=10,
        what="the successor forked",
    )  # fmt: skip
    seen = []
    deadline = time.monotonic() + 30
    while not events(server.errlog(), "worker.booted", worker=successor[0]):
        assert time.monotonic() < deadline, server.errlog()
        seen.append(readyz(side))
        assert server.get("/").status == 200
    assert seen and set(seen) == {200}, seen
    assert server.stop() == 0, server.errlog()


def test_readyz_stays_200_through_a_reload_and_is_503_while_a_lost_worker_is_replaced(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """During a HUP the old workers serve until the new ones have booted: ready throughout.
    A worker that dies leaves fewer booted workers than configured until its replacement has
    booted: not ready meanwhile. The app takes a second to import, so both are observable."""
    server, side = slow_ready_server(wsgid, workers=1)
    (first,) = server.wait_workers(1)
    server.send_signal(signal.SIGHUP)
    seen = []
    deadline = time.monotonic() + 30
    while not events(server.errlog(), "reload.done"):
        assert time.monotonic() < deadline, server.errlog()
        seen.append(readyz(side))
    assert seen and set(seen) == {200}, seen
    (second,) = poll(lambda: [p for p in server.worker_pids() if p != first] or None, 10)
    os.kill(second, signal.SIGKILL)
    _, _, body = poll(
        lambda: (answer := probe(side, "/readyz"))[0] == 503 and answer, timeout=10,
        what="/readyz 503 while the worker is replaced",
    )  # fmt: skip
    assert body == b"not ready: 0 of 1 workers booted\n", body
    poll(lambda: readyz(side) == 200, timeout=15, what="/readyz 200 once replaced")
