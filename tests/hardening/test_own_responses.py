"""The responses wsgid makes itself carry `Date`, as the application's do.

RFC 9110 §6.6.1: an origin server with a clock MUST send `Date` on 2xx, 3xx and 4xx
responses (and may on 5xx; wsgid does). The refusals (400, 408, 413, 414, 431, 501, 505) and
the 500 for an application error are built by wsgid, not by `start_response`, so each is
checked on the wire, for every worker kind, for a valid IMF-fixdate close to now.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from support.kinds import kind_args
from support.server import WsgidServer

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
HOST = b"Host: example.org\r\n"
CASES: dict[int, bytes] = {
    400: b"GET / HTTP/1.1\r\n\r\n",  # no Host
    408: b"GET / HTTP/1.1\r\n" + HOST,  # the head never ends
    413: b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n",
    414: b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    431: b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: v\r\n" % i for i in range(20)) + b"\r\n",
    501: b"BREW / HTTP/1.1\r\n" + HOST + b"\r\n",
    505: b"GET / HTTP/2.0\r\n" + HOST + b"\r\n",
    500: b"GET /raise HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
}
LIMITS = ["--limit-request-line", "200", "--limit-request-fields", "10",
          "--limit-request-body", "10", "--header-timeout", "1"]  # fmt: skip


def exchange(port: int, raw: bytes, timeout: float = 15.0) -> bytes:
    """Send `raw`, read until the server closes; what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def fields(reply: bytes) -> tuple[int, dict[str, list[str]]]:
    head, sep, _ = reply.partition(b"\r\n\r\n")
    assert sep, reply
    lines = head.decode("latin-1").split("\r\n")
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), found


def test_every_response_wsgid_makes_itself_carries_a_valid_date(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid("misbehaving_app:app", *kind_args(kind), *LIMITS, workers=1)
    problems = []
    for status, raw in CASES.items():
        reply = exchange(server.port, raw)
        code, found = fields(reply)
        dates = found.get("date", [])
        if code != status:
            problems.append(f"{status}: got {reply[:200]!r}")
        elif len(dates) != 1 or not IMF_FIXDATE.fullmatch(dates[0]):
            problems.append(f"{status}: Date {dates} in {reply[:300]!r}")
        elif abs(parsedate_to_datetime(dates[0]).timestamp() - time.time()) > 120:
            problems.append(f"{status}: Date {dates[0]} is not now")
    assert not problems, "\n".join(problems)
