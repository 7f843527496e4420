"""statsd: the datagrams a real wsgid sends to a real UDP and a real UNIX datagram receiver.

Every line received is checked against the exact forms gunicorn sends (name, value, type,
sample rate, prefix, dogstatsd tags); the counts are the requests the test made, whatever
interval they fell in; zero values are sent (an idle interval still says `requests:0`); the
timer lines weighed by their sample rates count and average what the Prometheus histogram
does; a name is sent to over IPv4, an IPv6 literal over IPv6; and a statsd that cannot be
reached changes nothing for the clients, with one warning.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.kinds import WORKER_KINDS, kind_args
from support.load import LoadLoop, events, wait_event
from support.server import WsgidServer, free_port

APP = "lifecycle_app:app"
INTERVAL = "0.2"
TAGS = "env:test,team:web"


class Receiver:
    """A statsd server that only records: the lines of every datagram, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(0.2)
        self.lines: list[str] = []
        self.datagrams = 0

    def collect(self, until: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        """Receive until `until(lines so far)` holds; every line received."""
        deadline = time.monotonic() + timeout
        while not until(self.lines):
            if time.monotonic() > deadline:
                raise AssertionError("statsd lines never matched; got:\n" + "\n".join(self.lines))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.datagrams += 1
            assert len(data) <= 8192, len(data)
            self.lines += data.decode("ascii").split("\n")
        return self.lines


@pytest.fixture
def udp() -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield Receiver(sock)
    finally:
        sock.close()


@pytest.fixture
def udp6() -> Iterator[Receiver]:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind(("::1", 0))
    except OSError as exc:
        sock.close()
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        yield Receiver(sock)
    finally:
        sock.close()


def total(lines: list[str], name: str) -> int:
    """The sum of the counter `name` over `lines` (prefix and tags as the test set them)."""
    pattern = re.compile(rf"{re.escape(name)}:(\d+)\|c\|@1\.0(?:\|#.*)?")
    return sum(int(m.group(1)) for line in lines if (m := pattern.fullmatch(line)))


def gauges(lines: list[str], name: str) -> list[int]:
    pattern = re.compile(rf"{re.escape(name)}:(\d+)\|g(?:\|#.*)?")
    return [int(m.group(1)) for line in lines if (m := pattern.fullmatch(line))]


# Every line gunicorn's naming may produce, prefix `app.` and the test's tags.
GUNICORN_LINE = re.compile(
    r"app\.gunicorn\.(?:"
    r"requests:\d+\|c\|@1\.0"
    r"|request\.status\.[1-5]\d\d:[1-9]\d*\|c\|@1\.0"
    r"|request\.duration:\d+\.\d{3}\|ms(?:\|@0\.\d+)?"
    r"|workers(?:\.busy|\.idle)?:\d+\|g"
    r"|log\.(?:critical|error|warning|exception):[1-9]\d*\|c\|@1\.0"
    r"|backlog:\d+\|h"  # a histogram, as gunicorn sends it (arbiter.py, since 24.1)
    r")\|#env:test,team:web"
)


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_statsd_udp_datagrams_have_gunicorns_names_prefix_tags_and_zero_values(
    wsgid: Callable[..., WsgidServer], udp: Receiver, kind: str
) -> None:
    port = udp.sock.getsockname()[1]
    server = wsgid(
        APP, *kind_args(kind),
        "--statsd-host", f"127.0.0.1:{port}", "--statsd-prefix", "app",
        "--dogstatsd-tags", TAGS, "--statsd-interval", INTERVAL, "--enable-backlog-metric",
        workers=2,
    )  # fmt: skip
    # Idle intervals: zero values are sent, not dropped, and the gauges every time.
    udp.collect(lambda lines: f"app.gunicorn.workers.idle:2|g|#{TAGS}" in lines)
    idle = udp.collect(lambda lines: lines.count(f"app.gunicorn.requests:0|c|@1.0|#{TAGS}") >= 2)
    assert f"app.gunicorn.workers:2|g|#{TAGS}" in idle
    assert f"app.gunicorn.backlog:0|h|#{TAGS}" in idle
    # Codes of their own, apart from the harness's readiness probe (a 200).
    for _ in range(10):
        assert server.get("/status?code=201").status == 201
    for _ in range(3):
        assert server.get("/status?code=404").status == 404
    lines = udp.collect(
        lambda lines: (
            total(lines, "app.gunicorn.request.status.201") >= 10
            and total(lines, "app.gunicorn.request.status.404") >= 3
        )
    )
    bad = [line for line in lines if not GUNICORN_LINE.fullmatch(line)]
    assert not bad, bad
    assert total(lines, "app.gunicorn.request.status.201") == 10
    assert total(lines, "app.gunicorn.request.status.404") == 3
    probe = total(lines, "app.gunicorn.request.status.200")
    assert total(lines, "app.gunicorn.requests") == 13 + probe
    timers = [line for line in lines if ".request.duration:" in line]
    assert len(timers) == 13 + probe and not any("|@" in line for line in timers), timers
    assert udp.datagrams < len(lines), "the lines of an interval go in shared datagrams"


def test_statsd_unix_datagram_socket_with_wsgid_names_counts_errors_and_restarts(
    wsgid: Callable[..., WsgidServer], tmp_path: Path
) -> None:
    path = tmp_path / "statsd.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        receiver = Receiver(sock)
        server = wsgid(
            APP, "--statsd-host", f"unix:{path}", "--statsd-naming", "wsgid",
            "--statsd-interval", INTERVAL, "--max-requests", "5", workers=1,
        )  # fmt: skip
        for _ in range(12):
            assert server.get("/status?code=202").status == 202
        # An app that fails: a 500, and an exception in the error log.
        assert server.get("/status?code=bad").status == 500
        lines = receiver.collect(
            lambda lines: (
                total(lines, "wsgid.request.status.202") >= 12
                and total(lines, "wsgid.request.status.500") >= 1
                and total(lines, "wsgid.workers.restarts.max_requests") >= 2
                and total(lines, "wsgid.log.exception") >= 1
            )
        )
    finally:
        sock.close()
    assert all(line.startswith("wsgid.") and "|#" not in line for line in lines), lines
    probe = total(lines, "wsgid.request.status.200")  # the harness's readiness probe
    assert total(lines, "wsgid.requests") == 13 + probe
    assert total(lines, "wsgid.request.status.500") == 1
    assert total(lines, "wsgid.request.status.202") == 12
    assert total(lines, "wsgid.workers.restarts.exit") == 0
    assert "wsgid.requests.active:0|g" in lines
    assert not any(line.startswith("gunicorn.") for line in lines)
    assert events(server.errlog(), "worker.max_requests")


@pytest.mark.parametrize("target", ["udp", "unix"])
def test_statsd_unreachable_leaves_responses_unaffected_warns_once_then_recovers(
    wsgid: Callable[..., WsgidServer], tmp_path: Path, target: str
) -> None:
    """Nobody listens at the address: every request is still answered, one warning says so,
    and once a receiver appears there the metrics arrive, with one line saying so."""
    if target == "udp":
        port = free_port()
        address = f"127.0.0.1:{port}"
        receiver_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bind_to: tuple[str, int] | str = ("127.0.0.1", port)
    else:
        path = tmp_path / "absent.sock"
        address = f"unix:{path}"
        receiver_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = str(path)
    server = wsgid(APP, "--statsd-host", address, "--statsd-interval", "0.1", workers=1)
    try:
        wait_event(server.errlog, "statsd.unreachable", check=server.check_running)
        for _ in range(200):
            assert server.get("/pid").status == 200
        # Several intervals more, still failing: the warning is not repeated.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert server.get("/pid").status == 200
        log = server.errlog()
        (warning,) = events(log, "statsd.unreachable")
        assert warning.level == "warning" and warning.fields["target"] == address, log
        receiver_sock.bind(bind_to)
        receiver = Receiver(receiver_sock)
        wait_event(server.errlog, "statsd.reachable", check=server.check_running, timeout=10)
        assert server.get("/pid").status == 200
        lines = receiver.collect(
            lambda lines: (
                total(lines, "gunicorn.requests") >= 1 and bool(gauges(lines, "gunicorn.workers"))
            )
        )
        assert gauges(lines, "gunicorn.workers")[-1] == 1
    finally:
        receiver_sock.close()


def weighed(lines: list[str], name: str) -> tuple[float, float]:
    """What a statsd that scales by the rate makes of the timer `name`: (count, sum in ms)."""
    pattern = re.compile(rf"{re.escape(name)}:(\d+\.\d+)\|ms(?:\|@(0\.\d+))?(?:\|#.*)?")
    count = total = 0.0
    for line in lines:
        if m := pattern.fullmatch(line):
            weight = 1 / float(m.group(2)) if m.group(2) else 1.0
            count += weight
            total += weight * float(m.group(1))
    return count, total


def histogram(side: int) -> tuple[int, float]:
    """(count, sum in ms) of the request duration histogram /metrics shows: every request."""
    with urllib.request.urlopen(f"http://127.0.0.1:{side}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = dict(
        line.split(" ", 1)
        for line in text.splitlines()
        if line.startswith("wsgid_request_duration_seconds_")
    )
    return int(float(found["wsgid_request_duration_seconds_count"])), 1000 * float(
        found["wsgid_request_duration_seconds_sum"]
    )


def test_statsd_timer_lines_weighed_by_their_rates_give_the_histograms_count_and_mean(
    wsgid: Callable[..., WsgidServer], udp: Receiver
) -> None:
    """Hundreds of fast requests a worker, then six slow ones, in one interval: far more
    requests than the rings keep, and the slow ones, the last of their workers, all among the
    samples. Weighed by their rates, the timer lines count what the Prometheus histogram
    counts, with its mean. With one rate for all the lines of an interval (samples over
    requests), each slow request stood for several: the mean came out several times too high
    (the hunt measured 68 times with more requests)."""
    side = free_port()
    server = wsgid(
        APP, "--statsd-host", f"127.0.0.1:{udp.sock.getsockname()[1]}",
        "--statsd-interval", "2", "--metrics-bind", f"127.0.0.1:{side}", workers=2,
    )  # fmt: skip
    # Just after the first send: what follows falls in the next interval (2 s). On a machine
    # so slow that it spans two, the test holds all the same (but one rate for all the lines
    # of an interval could pass too).
    udp.collect(lambda lines: bool(lines) and ".workers.idle:" in lines[-1])
    before = histogram(side)[0]  # what came first: the harness's readiness probe
    with LoadLoop(server.port, "/pid", keepalive=0, fresh=4) as load:
        load.wait_served(600)
    assert not load.stats.failures, load.stats.summary()
    # The last requests of their workers, whichever serves which: six of a ring's 64.
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(lambda _: server.get("/sleep?s=0.1").status, range(6))) == [200] * 6
    expected = before + len(load.stats.served) + 6
    # In the histogram once the workers published (within 0.2 s); in statsd at the end of
    # the interval that has them (its last line: the idle gauge, after every timer line).
    deadline = time.monotonic() + 10
    while (exact := histogram(side))[0] < expected:
        assert time.monotonic() < deadline, f"/metrics counts {exact[0]} of {expected}"
        time.sleep(0.05)
    assert exact[0] == expected
    lines = udp.collect(
        lambda lines: total(lines, "gunicorn.requests") >= expected and ".idle:" in lines[-1]
    )
    assert total(lines, "gunicorn.requests") == expected
    timers = [line for line in lines if line.startswith("gunicorn.request.duration:")]
    assert any("|@" in line for line in timers), f"not sampled: {len(timers)} of {expected}"
    slow = [line for line in timers if re.match(r"[^:]+:1\d\d\.", line)]
    assert len(slow) == 6 and not any("|@" in line for line in slow), slow
    count, summed = weighed(lines, "gunicorn.request.duration")
    # A fast request over 5 ms (a loaded machine) may fall in a bucket no sample is in, and
    # go uncounted: a little short, never several times off.
    assert count == pytest.approx(expected, rel=0.05), (count, exact)
    assert summed / count == pytest.approx(exact[1] / expected, rel=0.25), (summed, count, exact)


@pytest.mark.parametrize("host", ["localhost", "[::1]"])
def test_statsd_by_name_or_ipv6_literal_reaches_its_receiver(
    wsgid: Callable[..., WsgidServer], request: pytest.FixtureRequest, host: str
) -> None:
    """`localhost` goes to 127.0.0.1 (its IPv4 address, wherever else /etc/hosts maps it), an
    IPv6 literal to ::1."""
    receiver: Receiver = request.getfixturevalue("udp6" if host == "[::1]" else "udp")
    port = receiver.sock.getsockname()[1]
    server = wsgid(APP, "--statsd-host", f"{host}:{port}", "--statsd-interval", INTERVAL, workers=1)
    receiver.collect(lambda lines: "gunicorn.workers:1|g" in lines)
    assert not events(server.errlog(), "statsd.unreachable")
