"""statsd without a network: the addresses statsd_host accepts and the one a host resolves to,
the lines of an interval and their sample rates, and how they are packed into datagrams."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest

from wsgid import statsd
from wsgid.stats import Snapshot


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("localhost:9125", "localhost:9125"),
        ("statsd.example", "statsd.example:8125"),
        ("10.0.0.1", "10.0.0.1:8125"),
        ("[::1]:9125", "[::1]:9125"),
        ("[::1]", "[::1]:8125"),
        ("unix:/run/statsd.sock", "unix:/run/statsd.sock"),
        ("unix:///run/statsd.sock", "unix:/run/statsd.sock"),
        ("unix:8125", "unix:8125"),  # gunicorn 19: host "unix", port 8125
    ],
)
def test_statsd_host_is_read_as_gunicorn_reads_it(text: str, written: str) -> None:
    assert str(statsd.parse_target(text)) == written


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:http", "a b:1", "unix:", "::1:8"])
def test_a_statsd_host_that_is_no_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"statsd address|port|socket path"):
        statsd.parse_target(text)


def _sender(**overrides: Any) -> statsd.Statsd:
    settings = SimpleNamespace(
        statsd_host="127.0.0.1:9", statsd_prefix="app", dogstatsd_tags="", statsd_naming="gunicorn",
        statsd_interval=1.0, enable_backlog_metric=False,
    )  # fmt: skip
    settings.__dict__.update(overrides)
    return statsd.Statsd(settings, log=None, baseline=Snapshot())


def test_an_interval_sends_what_changed_and_samples_timers_past_the_ring() -> None:
    sender = _sender(dogstatsd_tags="env:x")
    now = Snapshot()
    now.answered = 300
    now.codes[200 - 100] = 299
    now.codes[503 - 100] = 1
    now.workers = 3
    now.states.update(busy=1, idle=2)
    now.timed = now.buckets[0] = 8  # eight requests of 5 ms or less
    lines = sender.lines(now, [1500, 250], timed=8)
    assert lines[:3] == [
        "app.gunicorn.requests:300|c|@1.0|#env:x",
        "app.gunicorn.request.status.200:299|c|@1.0|#env:x",
        "app.gunicorn.request.status.503:1|c|@1.0|#env:x",
    ]
    # Two durations stand for eight requests: statsd scales them by the rate.
    assert lines[3:5] == [
        "app.gunicorn.request.duration:1.500|ms|@0.25|#env:x",
        "app.gunicorn.request.duration:0.250|ms|@0.25|#env:x",
    ]
    assert lines[5:] == [
        "app.gunicorn.workers:3|g|#env:x",
        "app.gunicorn.workers.busy:1|g|#env:x",
        "app.gunicorn.workers.idle:2|g|#env:x",
    ]
    # The next interval: counters are deltas (0 is still said), gauges are sent again.
    after = sender.lines(now, [], timed=0)
    assert after == [
        "app.gunicorn.requests:0|c|@1.0|#env:x",
        "app.gunicorn.workers:3|g|#env:x",
        "app.gunicorn.workers.busy:1|g|#env:x",
        "app.gunicorn.workers.idle:2|g|#env:x",
    ]


def _weighed(lines: list[str]) -> tuple[float, float]:
    """What a statsd that scales by the rate makes of the duration lines: (count, sum ms)."""
    count = total = 0.0
    for line in lines:
        value, _, rest = line.partition(":")[2].partition("|ms")
        weight = 1 / float(rest[len("|@") :]) if rest else 1.0
        count += weight
        total += weight * float(value)
    return count, total


def test_each_duration_histogram_bucket_carries_its_own_sample_rate() -> None:
    """The hunt's case: a worker's 8,000 fast requests sampled 64 times, another worker's 3
    slow ones among its last 64. One rate for all (128 samples of 8,003 requests) made each
    slow one stand for 62 requests; per bucket, the fast ones stand for the 8,000 and the slow
    ones for themselves: count and mean are the histogram's."""
    sender = _sender(statsd_prefix="")
    now = Snapshot()
    fast, slow = [80] * 64 + [80] * 61, [120_000] * 3  # µs: 0.08 ms, 120 ms
    now.buckets[0] = 8000  # 5 ms or less
    now.buckets[5] = 3  # 100 to 250 ms
    now.timed = 8003
    lines = [line for line in sender.lines(now, fast + slow, timed=8003) if "duration" in line]
    assert lines[0] == "gunicorn.request.duration:0.080|ms|@0.01562"
    assert lines[-3:] == ["gunicorn.request.duration:120.000|ms"] * 3  # all three sampled
    count, total = _weighed(lines)
    true_mean = (8000 * 0.08 + 3 * 120) / 8003
    assert count == pytest.approx(8003, rel=1e-3)
    assert total / count == pytest.approx(true_mean, rel=1e-3)
    # A bucket counted below its samples (a worker published between two reads of its
    # slot): those samples go at rate 1, none stands for less than one request.
    assert statsd.sample_rates([80, 90, 6000], [1, 0, 0] + [0] * 9) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.25, "0.25"), (0.015625, "0.01562"), (1 / 3, "0.3333"), (5e-06, "0.000005"),
     (1 / 150_000, "0.000006667")],
)  # fmt: skip
def test_a_sample_rate_is_written_without_an_exponent(rate: float, text: str) -> None:
    assert statsd.rate_text(rate) == text


def test_the_prefix_gets_one_dot_and_wsgid_naming_adds_its_own_lines() -> None:
    sender = _sender(statsd_prefix="web.", statsd_naming="wsgid")
    now = Snapshot()
    now.restarts["memory"] = 2
    now.logs[1] = 4  # error
    lines = sender.lines(now, [], timed=0)
    assert "web.wsgid.requests:0|c|@1.0" in lines
    assert "web.wsgid.log.error:4|c|@1.0" in lines
    assert "web.wsgid.workers.restarts.memory:2|c|@1.0" in lines
    assert "web.wsgid.requests.active:0|g" in lines


def test_lines_are_packed_into_datagrams_no_larger_than_asked() -> None:
    lines = [f"gunicorn.request.duration:{i}.000|ms" for i in range(200)]
    datagrams = statsd.pack(lines, statsd.UDP_DATAGRAM)
    assert all(len(d) <= statsd.UDP_DATAGRAM for d in datagrams)
    assert b"\n".join(datagrams).decode().split("\n") == lines
    assert len(datagrams) < len(lines) / 10
    assert statsd.pack(["x" * 2000], 100) == [b"x" * 2000]  # a long line goes alone


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: object) -> None:
        self.events.append(event)

    def info(self, event: str, **_: object) -> None:
        self.events.append(event)


def test_a_name_that_does_not_resolve_is_asked_again_after_a_growing_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The master's loop must not wait on a dead resolver every interval: after a failure the
    name is not looked up again before the delay (1 s, doubling up to 60 s); one warning."""
    calls: list[str] = []

    def getaddrinfo(host: str, *args: object, **kw: object) -> object:
        calls.append(host)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    log = _Log()
    sender = statsd.Statsd(
        SimpleNamespace(
            statsd_host="statsd.example:8125", statsd_prefix="", dogstatsd_tags="",
            statsd_naming="gunicorn", statsd_interval=1.0, enable_backlog_metric=False,
        ),
        log, Snapshot(),
    )  # fmt: skip
    sender.send(["gunicorn.requests:0|c|@1.0"])
    sender.send(["gunicorn.requests:0|c|@1.0"])  # within the first second: not asked again
    assert len(calls) == 1
    for delay in (1.0, 2.0, 4.0, 8.0):
        clock[0] += delay
        sender.send(["gunicorn.requests:0|c|@1.0"])
    assert len(calls) == 5 and sender.resolve_delay == 16.0
    assert log.events == ["statsd.unreachable"]


# The address chosen for a UDP target (the real resolver: /etc/hosts, no network).


def test_ip_literals_are_sent_to_in_their_own_family() -> None:
    family, _, _, address = statsd.resolve("127.0.0.1", 8125)
    assert (family, address[:2]) == (socket.AF_INET, ("127.0.0.1", 8125))
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    family, _, _, address = statsd.resolve("::1", 8125)
    assert (family, address[:2]) == (socket.AF_INET6, ("::1", 8125))


def test_a_name_with_both_families_is_sent_to_over_ipv4() -> None:
    """glibc can answer ::1 first for a name /etc/hosts maps both ways (Debian's `localhost`):
    the IPv4 answer is chosen wherever it is; IPv6 only when there is no IPv4 answer."""
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    v4 = socket.getaddrinfo("127.0.0.1", 8125, type=socket.SOCK_DGRAM)
    v6 = socket.getaddrinfo("::1", 8125, type=socket.SOCK_DGRAM)
    assert statsd.prefer_ipv4(v6 + v4)[4][0] == "127.0.0.1"
    assert statsd.prefer_ipv4(v4 + v6)[4][0] == "127.0.0.1"
    assert statsd.prefer_ipv4(v6)[4][0] == "::1"


def test_localhost_mapped_both_ways_is_sent_to_over_ipv4() -> None:
    """The hunt's case end to end at the resolver: `localhost` where /etc/hosts gives it
    127.0.0.1 and ::1."""
    answers = socket.getaddrinfo("localhost", 8125, type=socket.SOCK_DGRAM)
    families = {info[0] for info in answers}
    if families != {socket.AF_INET, socket.AF_INET6}:
        pytest.skip(f"localhost resolves to {sorted(info[4][0] for info in answers)} only here")
    family, _, _, address = statsd.resolve("localhost", 8125)
    assert (family, address[0]) == (socket.AF_INET, "127.0.0.1")
