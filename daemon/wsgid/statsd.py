"""statsd metrics under gunicorn's names, sent by the master on an interval.

Owns: the statsd target (`statsd_host`), what is sent to it and how. Every `statsd_interval`
the master hands over the totals (stats.py); this module turns what changed since the last
interval into statsd lines and sends them, packed into as few datagrams as fit.

The lines are gunicorn's, so that its dashboards and the Datadog integration keep working
(`statsd_naming = "gunicorn"`, the default; "wsgid" puts `wsgid.` in place of `gunicorn.`):

    <prefix>gunicorn.requests:<n>|c|@1.0                 responses this interval (0 included)
    <prefix>gunicorn.request.status.<code>:<n>|c|@1.0    per status code seen this interval
    <prefix>gunicorn.request.duration:<ms>|ms[|@<rate>]  one per request, in milliseconds
    <prefix>gunicorn.workers:<n>|g                       live workers, every interval
    <prefix>gunicorn.workers.busy:<n>|g / .idle:<n>|g    booted workers with / without a
                                                         request in the app (wsgid's own)
    <prefix>gunicorn.log.<level>:<n>|c|@1.0              critical, error, warning, exception
    <prefix>gunicorn.backlog:<n>|h                       enable_backlog_metric: connections
                                                         waiting in the listeners' queues

`dogstatsd_tags` is appended to every line as `|#<tags>`. gunicorn sends one datagram per
request and metric from each worker; here the workers only count (the scoreboard) and the
master sends the sum, so the timer lines are the request durations each worker's ring still
holds (its latest RING of the interval). When a worker served more, the lines carry a sample
rate (`|@0.25`), one per histogram bucket (5 ms ... 10 s): the samples in the bucket over
the interval's requests there, which the workers' histogram counts exactly. A statsd that
scales by the rate then counts each bucket's requests right, whichever worker served them.

The host of a UDP target is resolved to its IPv4 address if it has one (as gunicorn, which
sends over IPv4 only); IPv6 for an IPv6 literal or a name with no IPv4 address.

Never in the way of serving: the socket is non-blocking and a datagram that does not fit is
dropped. A name is resolved once, and again after any failure (not on every interval: the
master loop must not wait on DNS; a name that did not resolve is tried again after 1, 2, 4 ...
up to 60 seconds); a target that cannot be reached is logged once
(`statsd.unreachable`), and once more when it can be again (`statsd.reachable`).
"""

from __future__ import annotations

import errno
import math
import os
import re
import socket
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from typing import Any

from wsgid import scoreboard as sb
from wsgid.stats import RESTART_CAUSES, Snapshot

DEFAULT_PORT = 8125
# A UDP datagram this size crosses any Ethernet path unfragmented; a UNIX one can be larger.
UDP_DATAGRAM = 1432
UNIX_DATAGRAM = 8192
RESOLVE_BACKOFF_MAX = 60.0  # seconds between two tries of a name that did not resolve


class Target:
    """Where the datagrams go: a UDP host and port, or a UNIX datagram socket's path."""

    def __init__(self, host: str = "", port: int = 0, path: str = "") -> None:
        self.host = host
        self.port = port
        self.path = path

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_target(text: str) -> Target:
    """`statsd_host` as gunicorn reads it; ValueError says what is wrong (the settings' error
    adds what is accepted)."""
    value = text.strip()
    # gunicorn 19 read `unix:8125` as host "unix" port 8125, and later releases still do.
    legacy = re.fullmatch(r"unix:(\d+)", value)
    if legacy:
        return Target("unix", _port(legacy.group(1), text))
    if value.startswith("unix:"):
        path = value[len("unix://") :] if value.startswith("unix://") else value[len("unix:") :]
        if not path:
            raise ValueError(f"{text!r} names no socket path")
        return Target(path=path)
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", value)
    if bracketed:
        port = bracketed.group(2)
        return Target(bracketed.group(1), _port(port, text) if port else DEFAULT_PORT)
    host, colon, port = value.rpartition(":")
    if not colon:
        host, port = value, ""
    if not host or ":" in host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} is not a statsd address")
    return Target(host, _port(port, text) if port else DEFAULT_PORT)


def _port(digits: str, text: str) -> int:
    port = int(digits) if digits.isdigit() else -1
    if not 0 < port < 65536:
        raise ValueError(f"{text!r} has no port from 1 to 65535")
    return port


class Statsd:
    """Sends the metrics of each interval to one statsd target."""

    def __init__(
        self,
        settings: Any,
        log: Any,
        baseline: Snapshot,
        backlog: Callable[[], int | None] | None = None,
    ) -> None:
        self.key = settings_key(settings)
        self.target = parse_target(settings.statsd_host)
        self.log = log
        prefix = settings.statsd_prefix
        self.prefix = prefix if not prefix or prefix.endswith(".") else prefix + "."
        self.tags = f"|#{settings.dogstatsd_tags}" if settings.dogstatsd_tags else ""
        self.root = f"{self.prefix}{settings.statsd_naming}."
        self.own_names = settings.statsd_naming == "wsgid"
        self.interval = settings.statsd_interval
        self.backlog = backlog  # enable_backlog_metric: connections waiting now (None: unknown)
        self.previous = baseline
        self.next_due = 0.0
        self.sock: socket.socket | None = None
        self.size = UNIX_DATAGRAM if self.target.path else UDP_DATAGRAM
        self.failing = ""  # why the target is unreachable ("": it is not, as far as known)
        self.delivered = False  # the socket's last datagrams went out without an error
        # A name that does not resolve is asked again after a delay that doubles up to
        # RESOLVE_BACKOFF_MAX: a resolver that does not answer blocks the master's loop for
        # its own timeout, which must not happen every interval.
        self.resolve_delay = 0.0
        self.resolve_after = 0.0

    def due_in(self, now: float) -> float:
        if not self.next_due:
            self.next_due = now + self.interval
        return max(0.0, self.next_due - now)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # what is sent

    def lines(self, now: Snapshot, durations: list[int], timed: int) -> list[str]:
        """The lines of one interval: what changed since the last one, and the gauges.

        `durations` are the timer samples (µs) of the interval; `timed`, how many requests
        they stand for, is not what their rates are made of: one rate over all of them made
        a slow request stand for many fast ones. The histogram's counts since the last
        interval give a rate per bucket (`sample_rates`).
        """
        before, self.previous = self.previous, now
        root = self.root
        out = [f"{root}requests:{now.answered - before.answered}|c|@1.0"]
        for index, count in enumerate(now.codes):
            delta = count - before.codes[index]
            if delta > 0:
                out.append(f"{root}request.status.{index + 100}:{delta}|c|@1.0")
        if durations:
            counts = [n - b for n, b in zip(now.buckets, before.buckets, strict=True)]
            for us, rate in zip(durations, sample_rates(durations, counts), strict=True):
                sampled = f"|@{rate_text(rate)}" if rate < 1.0 else ""
                out.append(f"{root}request.duration:{us / 1000:.3f}|ms{sampled}")
        out.append(f"{root}workers:{now.workers}|g")
        out.append(f"{root}workers.busy:{now.states['busy']}|g")
        out.append(f"{root}workers.idle:{now.states['idle']}|g")
        for index, level in enumerate(sb.LOG_LEVELS):
            delta = now.logs[index] - before.logs[index]
            if delta > 0:
                out.append(f"{root}log.{level}:{delta}|c|@1.0")
        if self.own_names:
            out.append(f"{root}requests.active:{now.active}|g")
            for cause in RESTART_CAUSES:
                delta = now.restarts[cause] - before.restarts[cause]
                if delta > 0:
                    out.append(f"{root}workers.restarts.{cause}:{delta}|c|@1.0")
        if self.backlog is not None:
            waiting = self.backlog()
            if waiting is not None:
                # gunicorn sends it as a histogram (`|h`), since it added the metric (24.1)
                kind = "g" if self.own_names else "h"
                out.append(f"{root}backlog:{waiting}|{kind}")
        tags = self.tags
        return [line + tags for line in out]

    def send(self, lines: list[str]) -> None:
        """Send `lines`, packed in datagrams; a failure is logged once, never raised.

        UDP says that nobody listens only afterwards (an ICMP error, pending on the socket):
        the target counts as reachable again once an interval's datagrams went out and no
        such error came back by the next one.
        """
        sock = self.sock
        if sock is not None:
            pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if pending:
                self._failed(os.strerror(pending))  # what the last interval's datagrams met
            elif self.failing and self.delivered:
                self.failing = ""
                self.log.info("statsd.reachable", target=str(self.target))
        sock = self.sock if self.sock is not None else self._connect()
        if sock is None:
            return
        try:
            for datagram in pack(lines, self.size):
                try:
                    sock.send(datagram)
                except (BlockingIOError, InterruptedError):
                    pass  # the socket's buffer is full: this datagram is dropped, not waited for
                except OSError as exc:
                    if exc.errno == errno.EMSGSIZE:
                        continue  # a line too long for a datagram (a huge tag list)
                    raise
        except OSError as exc:
            self._failed(exc.strerror or str(exc))
            return
        self.delivered = True

    def _connect(self) -> socket.socket | None:
        target = self.target
        if self.resolve_after and time.monotonic() < self.resolve_after:
            return None  # this interval's lines are dropped, as while unreachable
        try:
            if target.path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                address: Any = target.path
            else:
                family, kind, proto, address = resolve(target.host, target.port)
                sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
            sock.setblocking(False)
            try:
                sock.connect(address)
            except OSError:
                sock.close()
                raise
        except socket.gaierror as exc:  # the name does not resolve (or the resolver failed)
            self.resolve_delay = min(max(1.0, self.resolve_delay * 2), RESOLVE_BACKOFF_MAX)
            self.resolve_after = time.monotonic() + self.resolve_delay
            self._failed(exc.strerror or str(exc))
            return None
        except OSError as exc:
            self._failed(exc.strerror or str(exc))
            return None
        self.resolve_delay = self.resolve_after = 0.0
        self.sock = sock
        return sock

    def _failed(self, why: str) -> None:
        """The target could not be reached: said once; resolved and connected again next time."""
        self.close()
        self.delivered = False
        if not self.failing:
            self.log.warning(
                "statsd.unreachable", target=str(self.target), error=why,
                action="metrics dropped until it answers; serving is not affected",
            )  # fmt: skip
        self.failing = why


def settings_key(settings: Any) -> tuple[Any, ...]:
    """What a reload must change for the master to make a new `Statsd` (None: statsd off)."""
    if settings.statsd_host is None:
        return (None,)
    return (
        settings.statsd_host, settings.statsd_prefix, settings.dogstatsd_tags,
        settings.statsd_naming, settings.statsd_interval, settings.enable_backlog_metric,
    )  # fmt: skip


def resolve(host: str, port: int) -> tuple[int, int, int, Any]:
    """(family, type, protocol, address) of a UDP `host`: its IPv4 address if it has one.

    getaddrinfo's first answer for a name with both can be IPv6 (Debian's /etc/hosts gives
    `localhost` both 127.0.0.1 and ::1), and a statsd listening on 127.0.0.1 then gets
    nothing. gunicorn sends over IPv4 only; here IPv6 is used for an IPv6 literal, or a name
    with no IPv4 address. One lookup for both families: a resolver that does not answer
    stalls the master once, not twice.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, kind, proto, _, address = prefer_ipv4(infos)
    return family, kind, proto, address


def prefer_ipv4(infos: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The first IPv4 answer of getaddrinfo's `infos`, else its first."""
    return next((info for info in infos if info[0] == socket.AF_INET), infos[0])


def sample_rates(durations: list[int], counts: list[int]) -> list[float]:
    """The sample rate of each of `durations` (µs): the samples in its histogram bucket over
    the requests the interval had there (`counts`: the histogram's, exact), at most 1.

    The samples are each worker's latest RING requests of the interval: a busier worker has
    a smaller share of its requests sampled, and a worker's slow requests are among them or
    not as they happen to fall. With one rate for all (samples over requests), 3 slow samples
    among 64 of 5,000 requests stood for 234 requests. With a rate per bucket, a statsd that
    scales by the rate counts each bucket's requests exactly, whichever worker served them;
    within a bucket the samples stand for the others, and a bucket with requests but no
    sample has no line (docs/metrics.md says so).
    """
    bounds = sb.BUCKET_US
    buckets = [bisect_left(bounds, us) for us in durations]  # as the workers count them
    sampled = Counter(buckets)
    # A count below its samples: last interval, a worker published between the reads of its
    # timed count and of its histogram, which counted these requests then; they come at rate 1.
    return [sampled[b] / counts[b] if counts[b] > sampled[b] else 1.0 for b in buckets]


def rate_text(rate: float) -> str:
    """`rate` with 4 significant digits and no exponent (not every statsd parses `5e-06`)."""
    text = f"{rate:.4g}"
    if "e" in text:
        text = f"{rate:.{3 - math.floor(math.log10(rate))}f}".rstrip("0")  # as %g does
    return text


def pack(lines: list[str], size: int) -> list[bytes]:
    """`lines` joined by newlines into datagrams of at most `size` bytes (a longer line alone)."""
    datagrams: list[bytes] = []
    current: list[bytes] = []
    length = 0
    for text in lines:
        line = text.encode("ascii", "replace")
        if current and length + 1 + len(line) > size:
            datagrams.append(b"\n".join(current))
            current, length = [], 0
        length += len(line) + (1 if current else 0)
        current.append(line)
    if current:
        datagrams.append(b"\n".join(current))
    return datagrams
