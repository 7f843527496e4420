"""Concurrency: N workers serve N slow requests at once; slow or idle clients stall nothing."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable

from support.client import poll, run_concurrently
from support.server import WsgidServer

SLEEP_APP = "sleep_app:app"


def get_json(server: WsgidServer, path: str, timeout: float = 10.0) -> dict[str, object]:
    r = server.get(path, timeout=timeout)
    assert r.status == 200, r.text
    data = json.loads(r.body)
    assert isinstance(data, dict)
    return data


def test_workers4_four_sleeping_requests_finish_together(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(SLEEP_APP, workers=4)

    # Readiness of all four workers (booted and accepting), polled: short concurrent requests
    # until four distinct worker pids have answered.
    answered: set[int] = set()

    def four_answered() -> bool:
        batch = run_concurrently(
            [lambda: get_json(server, "/sleep?s=0.2") for _ in range(4)], timeout=30
        )
        answered.update(int(str(d["pid"])) for d in batch)
        return len(answered) == 4

    poll(four_answered, timeout=20, interval=0, what="four distinct workers to answer")

    barrier = threading.Barrier(4)

    def one() -> tuple[dict[str, object], float]:
        barrier.wait(timeout=10)
        start = time.monotonic()
        data = get_json(server, "/sleep?s=1")
        return data, time.monotonic() - start

    t0 = time.monotonic()
    results = run_concurrently([one] * 4, timeout=30)
    total = time.monotonic() - t0
    pids = {int(str(data["pid"])) for data, _ in results}
    durations = sorted(round(d, 3) for _, d in results)
    assert total < 2.0, f"4 x 1 s requests took {total:.2f}s in all (each: {durations})"
    assert all(float(str(data["slept"])) == 1.0 for data, _ in results)
    assert len(pids) == 4, f"served by {len(pids)} workers, not 4: {pids}"


def test_one_worker_fresh_client_answered_within_1s_despite_idle_and_slow_clients(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """50 idle keep-alive connections + 20 clients sending a head 1 byte / 100 ms."""
    server = wsgid(SLEEP_APP, "--keep-alive", "60", workers=1)

    # 50 idle keep-alive connections: each served one request, then left open.
    idle: list[http.client.HTTPConnection] = []
    slow_socks: list[socket.socket] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for _ in range(50):
            conn = server.connection(timeout=10)
            conn.request("GET", "/pid")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            assert not resp.will_close
            idle.append(conn)

        # 20 slow clients: one byte of the request head every 100 ms.
        head = b"GET /pid?slow=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sent = [0] * 20
        finished_head_at: list[float] = []
        lock = threading.Lock()

        def slow_client(i: int) -> None:
            sock = slow_socks[i]
            try:
                for b in head:
                    if stop.wait(0.1):
                        return
                    sock.sendall(bytes([b]))
                    sent[i] += 1
                with lock:
                    finished_head_at.append(time.monotonic())
                while not stop.is_set() and sock.recv(65536):
                    pass
            except OSError:
                pass  # the server may close a slow client later on; not what is tested here

        for _ in range(20):
            slow_socks.append(server.connect(timeout=10))
        threads += [threading.Thread(target=slow_client, args=(i,), daemon=True) for i in range(20)]
        for t in threads:
            t.start()
        # Every slow client is mid-head (a few bytes sent, far from the end).
        poll(lambda: min(sent) >= 3, timeout=10, what="slow clients to start sending")

        timings = []
        for i in range(5):
            start = time.monotonic()
            data = get_json(server, f"/pid?fresh={i}", timeout=5)
            timings.append(time.monotonic() - start)
            assert data["pid"] is not None
        fresh_done = time.monotonic()

        assert max(timings) < 1.0, f"fresh requests took {[round(t, 3) for t in timings]} s"
        # The fresh requests really ran while the slow heads were incomplete.
        with lock:
            assert not finished_head_at or min(finished_head_at) > fresh_done, (
                "a slow client finished its head before the fresh requests were done"
            )
        assert min(sent) < len(head)

        # The idle connections were held open all along: they still serve.
        for conn in idle[:5]:
            conn.request("GET", "/pid?again=1")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
    finally:
        stop.set()
        for sock in slow_socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        for t in threads:
            t.join(timeout=5)
        for sock in slow_socks:
            sock.close()
        for conn in idle:
            conn.close()
