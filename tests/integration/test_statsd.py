"""statsd: the datagrams a real wsgid sends to a real UDP and a real UNIX datagram receiver.

Every line received is checked against the exact forms gunicorn sends (name, value, type,
sample rate, prefix, dogstatsd tags); the counts are the requests the test made, whatever
interval they fell in; zero values are sent (an idle interval still says `requests:0`); and
a statsd that cannot be reached changes nothing for the clients, with one warning.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.kinds import WORKER_KINDS, kind_args
from support.load import events, wait_event
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
    r"|backlog:\d+\|ms"
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
    assert f"app.gunicorn.backlog:0|ms|#{TAGS}" in idle
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
