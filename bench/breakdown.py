"""Where a request's Python time goes: the sync worker's own code, with the sockets faked.

`bench/run` measures whole servers; this measures wsgid's side of one request without any
system call, so a change to the hot path can be judged in seconds and without wrk's noise:

- `parse`: `RequestParser.feed` of one request (llhttp, the field pass, the policy checks);
- `parse + exchange`: plus `Exchange.run` (environ, request id, the app, the response head);
- `loop path`: the whole of `ConnectionLoop._on_readable` for a connection whose `recv`
  returns the request and whose `send` takes everything, and the end of the turn's sending
  of its held response (what the epoll loop runs per request, minus `epoll_wait` and the
  two system calls themselves).

Each is run for wrk's one-header request and for a browser-style request with 13 fields,
and printed in microseconds (best of several rounds of CPU time). Run it pinned to a core:

    taskset -c 1 .venv/bin/python bench/breakdown.py
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # bench.apps
# E402 below: these imports need the path set above.

from bench.apps import hello  # noqa: E402
from wsgid import logs as logs_mod  # noqa: E402
from wsgid.hooks import Hooks  # noqa: E402
from wsgid.http import environ as environ_mod  # noqa: E402
from wsgid.http.parser import RequestParser  # noqa: E402
from wsgid.runtime import RuntimeSettings  # noqa: E402
from wsgid.scoreboard import Scoreboard  # noqa: E402
from wsgid.settings import Settings  # noqa: E402
from wsgid.workers.base import WorkerContext  # noqa: E402
from wsgid.workers.connection import Connection  # noqa: E402
from wsgid.workers.sync import SyncWorker  # noqa: E402

REQUESTS = {
    "wrk (1 field)": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    "browser (13 fields)": (
        b"GET /index.html?x=1 HTTP/1.1\r\nHost: localhost:8000\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
        b"Cookie: session=abcdef0123456789; csrftoken=xyz\r\nReferer: http://localhost:8000/\r\n"
        b"Cache-Control: max-age=0\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n"
        b"Sec-Fetch-Mode: navigate\r\nDNT: 1\r\nSec-Fetch-Site: none\r\n\r\n"
    ),
}


class FakeSocket:
    """`recv` always returns the same request; `send` takes everything."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.fd = os.open(os.devnull, os.O_RDONLY)  # a real fd number for the tables

    def fileno(self) -> int:
        return self.fd

    def recv(self, size: int) -> bytes:
        return self.request

    def send(self, data: bytes) -> int:
        return len(data)


class NullChannel:
    def send(self, data: bytes, more: bytes = b"") -> None:
        pass

    def send_last(self, data: bytes, more: bytes = b"") -> None:
        pass

    def fill(self) -> None:
        raise AssertionError("no body to read")

    def sendfile(self, file: Any, count: int | None) -> int:
        raise AssertionError("no file to send")

    def handover(self) -> object:
        return None


def best(step: Callable[[], None], count: int, rounds: int) -> float:
    """Microseconds of CPU per call of `step`, best of `rounds`."""
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            step()
        results.append((time.process_time() - started) / count * 1e6)
    return min(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    settings = RuntimeSettings.copy_of(Settings(app="bench.apps:hello"))
    logs = logs_mod.setup(settings)
    worker = SyncWorker(
        WorkerContext(
            settings=settings,
            listeners=[],
            logs=logs,
            scoreboard=Scoreboard(1),
            slot=0,
            boot_fd=-1,
            app=hello,
            age=1,
            hooks=Hooks(settings, logs.error),
            master_pid=os.getppid(),  # no master here; the loop's parent check is never run
        )
    )
    worker.setup()
    base = environ_mod.connection_base(
        server=("127.0.0.1", "8000"),
        peer=("127.0.0.1", "50000"),
        url_scheme="http",
        multithread=False,
    )
    channel = NullChannel()
    print("| request | parse µs | parse + exchange µs | loop path µs |")
    print("| --- | ---: | ---: | ---: |")
    for name, request in REQUESTS.items():
        req_parser = RequestParser(worker.limits)

        def parse(req_parser: RequestParser = req_parser, request: bytes = request) -> None:
            req_parser.feed(request)
            req_parser.ready.popleft()

        def parse_exchange(
            req_parser: RequestParser = req_parser, request: bytes = request
        ) -> None:
            req_parser.feed(request)
            req = req_parser.ready.popleft()
            worker.exchange.run(base, req, channel, True, "bench")

        fake = cast(socket.socket, FakeSocket(request))  # recv and send are all it needs
        conn = Connection(fake, RequestParser(worker.limits), dict(base), 30.0)
        conn.events = select.EPOLLIN  # as if registered: the fake fd cannot be
        conn.holds = worker.holds_responses
        worker.conns[conn.fd] = conn

        def loop_path(conn: Connection = conn) -> None:
            worker._on_readable(conn, 0.0)
            worker._send_held()  # what the end of the turn does with its response

        cells = [best(step, args.count, args.rounds) for step in (parse, parse_exchange, loop_path)]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
