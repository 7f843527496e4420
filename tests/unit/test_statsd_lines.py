"""statsd without a network: the addresses statsd_host accepts, the lines of an interval, and
how they are packed into datagrams."""

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
