"""Prometheus: `/metrics` on the side listener, checked by promtool and scraped by a real
Prometheus server; the app's own prometheus_client metrics across recycled workers.

Every scrape a test takes is passed to `promtool check metrics` (Debian's `prometheus`
package), which fails on a malformed exposition and on lint problems (names, help, types).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.client import poll
from support.kinds import WORKER_KINDS, kind_args
from support.load import exactly_children, stop_process, wait_event, wait_pidfile
from support.server import WorkDir, WsgidServer, free_port

APP = "lifecycle_app:app"
PROM_APP = "prom_app:app"


def scrape(port: int) -> str:
    """One scrape of `/metrics`, which promtool must find clean."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, body
        assert resp.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
    finally:
        conn.close()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr + "\n" + body
    return body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def scrape_until(port: int, name: str, expected: float, **labels: str) -> str:
    """Scrape until the sample `name` with `labels` reads `expected` (the workers publish
    their counts a few times a second); that scrape."""

    def attempt() -> str | None:
        text = scrape(port)
        return text if value(text, name, **labels) == expected else None

    return poll(attempt, timeout=15, what=f"{name}{labels} == {expected}")


def metrics_server(
    wsgid: Callable[..., WsgidServer], app: str, *args: str, workers: int = 2
) -> tuple[WsgidServer, int]:
    port = free_port()
    server = wsgid(app, "--metrics-bind", f"127.0.0.1:{port}", *args, workers=workers)
    return server, port


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_metrics_count_the_responses_and_pass_promtool_check_metrics(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server, port = metrics_server(wsgid, APP, *kind_args(kind))
    for _ in range(7):
        assert server.get("/status?code=404").status == 404
    for _ in range(5):
        assert server.get("/status?code=503").status == 503
    text = scrape_until(port, "wsgid_requests_total", 5, status_class="5xx")
    assert value(text, "wsgid_requests_total", status_class="4xx") == 7
    assert (value(text, "wsgid_requests_total", status_class="2xx") or 0) >= 1  # the probe
    timed = value(text, "wsgid_request_duration_seconds_count") or 0
    assert timed >= 12
    assert value(text, "wsgid_request_duration_seconds_bucket", le="+Inf") == timed
    assert value(text, "wsgid_requests_in_flight") == 0
    text = scrape_until(port, "wsgid_workers", 2, state="idle")  # the second may boot late
    assert value(text, "wsgid_workers", state="busy") == 0
    assert value(text, "wsgid_worker_restarts_total", cause="exit") == 0
    assert value(text, "wsgid_listen_backlog") == 0


def test_a_busy_worker_and_its_request_in_flight_are_seen_while_it_runs(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server, port = metrics_server(wsgid, APP, workers=2)
    scrape_until(port, "wsgid_workers", 2, state="idle")  # both booted (the harness waits for one)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(server.get, "/sleep?s=3")
        text = scrape_until(port, "wsgid_requests_in_flight", 1)
        assert value(text, "wsgid_workers", state="busy") == 1
        assert value(text, "wsgid_workers", state="idle") == 1
        assert slow.result(timeout=30).status == 200
    text = scrape_until(port, "wsgid_requests_in_flight", 0)
    count = value(text, "wsgid_request_duration_seconds_count") or 0
    # The 3 s request is past the 2.5 s bucket, the readiness probe is not.
    assert value(text, "wsgid_request_duration_seconds_bucket", le="2.5") == count - 1 >= 1


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start a real Prometheus on loopback scraping 127.0.0.1:`port` every second; returns
    the base URL of its HTTP API."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: wsgid\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        listen = f"127.0.0.1:{free_port()}"
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={listen}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return f"http://{listen}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def promql(base: str, query: str) -> float | None:
    """The single value of an instant PromQL query (None: no result yet, or not up)."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            import json

            answer = json.load(resp)
    except OSError:
        return None
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_a_real_prometheus_scrapes_wsgid_and_promql_returns_the_requests_sent(
    wsgid: Callable[..., WsgidServer], prometheus: Callable[[int], str]
) -> None:
    server, port = metrics_server(wsgid, APP)
    base = prometheus(port)
    sent = 137
    for _ in range(sent):
        assert server.get("/status?code=404").status == 404
    query = 'sum(wsgid_requests_total{status_class="4xx",job="wsgid"})'
    got = poll(lambda: promql(base, query) == sent, timeout=60, what=f"{query} == {sent}")
    assert got
    assert promql(base, 'up{job="wsgid"}') == 1


def test_the_apps_multiprocess_counters_are_exact_across_recycled_workers_and_files_bounded(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """prometheus_client in multiprocess mode, with nothing set up by the user: 1,000 hits
    under max_requests=5 (about 200 recycled workers) count 1,000, and the directory holds
    files for the slots in use, not for every worker that ever ran."""
    server, port = metrics_server(wsgid, PROM_APP, "--max-requests", "5")
    directory = Path(server.get("/dir").text)
    assert directory.is_dir() and directory.name.startswith("wsgid-prometheus-")
    hits = 1000

    def hit(_: int) -> int:
        return server.get("/hit").status

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(hit, range(hits))) == {200}
    text = scrape_until(port, "app_hits_total", hits)
    restarts = value(text, "wsgid_worker_restarts_total", cause="max_requests")
    assert restarts is not None and restarts >= 150, text
    files = sorted(p.name for p in directory.iterdir())
    # A counter file and a live-gauge file per slot, for the two workers and the slot a
    # replacement takes while its predecessor finishes (and the master's, if any).
    assert len(files) <= 8, files
    assert all((name.endswith(".db") and "_slot" in name) or "_master" in name for name in files)


def test_a_sigkilled_workers_live_gauge_is_not_summed(wsgid: Callable[..., WsgidServer]) -> None:
    """mark_process_dead runs for a worker killed with SIGKILL: the dead worker's 1 is no
    longer summed, and its replacement, which has not served yet (and takes its slot, so
    its files), starts from 0."""
    server, port = metrics_server(wsgid, PROM_APP, workers=2)
    with ThreadPoolExecutor(4) as pool:
        seen = {int(r.text) for r in pool.map(lambda _: server.get("/hit"), range(40))}
    scrape_until(port, "app_workers_live", len(seen))  # each worker that served says 1
    victim = sorted(seen)[0]
    os.kill(victim, signal.SIGKILL)
    poll(
        lambda: len(set(server.worker_pids()) - {victim}) == 2,
        timeout=20,
        what="the killed worker's replacement",
    )
    text = scrape_until(port, "wsgid_workers", 2, state="idle")
    assert value(text, "app_workers_live") == len(seen) - 1, text
    assert value(text, "wsgid_worker_restarts_total", cause="exit") == 1


@pytest.mark.parametrize("kind", ["gthread", "tornado"])
def test_a_worker_whose_threads_are_all_stuck_counts_as_a_timeout_restart(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """Its requests ran past request_timeout and it left to be replaced: a timeout, as the
    master's own heartbeat timeout is (it counted as an `exit`, which a timeout alert
    misses)."""
    server, port = metrics_server(
        wsgid, "lifecycle_app:app", "-k", kind, "--threads", "1", "--request-timeout", "1",
        workers=1,
    )  # fmt: skip
    (worker,) = server.wait_workers(1)
    assert server.get("/sleep?s=3", timeout=30).status == 503
    poll(lambda: worker not in server.worker_pids() and server.worker_pids(), timeout=20)
    text = scrape_until(port, "wsgid_worker_restarts_total", 1, cause="timeout")
    assert value(text, "wsgid_worker_restarts_total", cause="exit") == 0, text


def test_usr2_hands_the_apps_metrics_directory_over_and_the_last_master_removes_it(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The old master made the directory; after USR2 the new master's workers count on in it,
    the old master leaves it when it exits, and the new master removes it when it stops."""
    pid2 = workdir.root / "wsgid.pid.2"
    server, port = metrics_server(
        wsgid, PROM_APP, "--pid", str(workdir.root / "wsgid.pid"), workers=1
    )
    directory = Path(server.get("/dir").text)
    for _ in range(3):
        assert server.get("/hit").status == 200
    server.send_signal(signal.SIGUSR2)
    new_master = wait_pidfile(pid2, timeout=30)
    new_workers: list[int] = []
    try:
        wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
        new_workers = poll(exactly_children(new_master, 1), 30, what="the new master's worker")
        assert server.stop(signal.SIGTERM, timeout=30) == 0  # the old master goes
        assert directory.is_dir(), "the old master removed what the new one uses"
        for _ in range(4):
            assert server.get("/hit").status == 200
        scrape_until(port, "app_hits_total", 7)  # the old workers' 3 and the new one's 4
    finally:
        stop_process(new_master, signal.SIGTERM, 30, also=new_workers)
    assert not directory.exists(), "the new master removes the directory it was handed"


def test_a_scrape_that_cannot_read_the_apps_files_is_answered_503_and_the_master_lives(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """A file prometheus_client cannot read (here an empty one, as a worker's file is for a
    moment while it is made) fails the collection: /metrics answers 503 and says why in the
    error log; the master serves on, and the next scrape after the file is whole is 200."""
    server, port = metrics_server(wsgid, PROM_APP)
    directory = Path(server.get("/dir").text)
    broken = directory / "counter_broken.db"
    broken.write_bytes(b"")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (503, b"metrics unavailable, try again\n")
    finally:
        conn.close()
    wait_event(server.errlog, "metrics.failed")
    broken.unlink()
    scrape(port)  # 200, and promtool finds it clean
    assert server.get("/hit").status == 200
    assert server.stop() == 0, server.errlog()
