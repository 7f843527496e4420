"""Slowloris trickler for the "slowloris" scenario of `bench/run`, and the idle holder of "idle".

Opens N connections to a server and keeps each one sending a request head that never ends: the
request line and ``Host`` at once, then one more header line every ``--interval`` seconds. With
``--idle``, each connection sends one whole keep-alive request instead, reads its answer and
then sends nothing more (an idle keep-alive connection). A
connection the server closes is reopened (counted as a reconnect). Prints ``ready`` on stdout once
every connection is open (or after ``--connect-timeout``), runs until SIGTERM/SIGINT, then prints
one line of counters (``open=… reconnects=… refused=…``) and exits 0.

Run by `bench/run`, pinned to the client CPU; standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import resource
import selectors
import signal
import socket
import sys
import time
from types import FrameType

HEAD_START = b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trickle\r\n"
IDLE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle\r\n\r\n"


class Trickler:
    """Keeps ``count`` connections open, each trickling an unfinished request head."""

    def __init__(self, host: str, port: int, count: int, interval: float, idle: bool) -> None:
        self.addr = (host, port)
        self.count = count
        self.interval = interval
        self.idle = idle
        self.answered: set[socket.socket] = set()  # idle: answered once, sending no more
        self.sel = selectors.DefaultSelector()
        self.socks: set[socket.socket] = set()
        self.lines: dict[socket.socket, int] = {}
        self.reconnects = 0
        self.refused = 0
        self.stopping = False

    def _open(self) -> bool:
        """Open one connection and send the start of a head; False if the server refused it."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.refused += 1
            return False
        self.socks.add(s)
        self.lines[s] = 0
        self.sel.register(s, selectors.EVENT_WRITE, "connect")
        return True

    def _drop(self, s: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(s)
        self.socks.discard(s)
        self.answered.discard(s)
        self.lines.pop(s, None)
        s.close()

    def _trickle(self, s: socket.socket) -> None:
        """Send the next header line; drop the socket if the server has closed it."""
        n = self.lines[s]
        if self.idle and n > 0:
            return
        if self.idle:
            data = IDLE_REQUEST
        else:
            data = HEAD_START if n == 0 else b"X-Trickle-%d: %s\r\n" % (n, b"a" * 8)
        try:
            s.send(data)
        except BlockingIOError:
            return
        except OSError:
            self._drop(s)
            return
        self.lines[s] = n + 1

    def _poll(self, timeout: float) -> int:
        """Handle connect completions and server closes; return connections made writable."""
        done = 0
        for key, _events in self.sel.select(timeout):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if key.data == "connect":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    self.refused += 1
                    self._drop(s)
                    continue
                self.sel.modify(s, selectors.EVENT_READ, "open")
                self._trickle(s)
                done += 1
            else:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the server (timeout, limit or error answer)
                    self._drop(s)
                    self.reconnects += 1
                elif self.idle:
                    self.answered.add(s)
        return done

    def run(self, connect_timeout: float) -> None:
        """Open every connection, say ``ready``, then trickle until stopped."""
        for _ in range(self.count):
            self._open()
        deadline = time.monotonic() + connect_timeout
        connected = 0
        while connected < len(self.socks) and time.monotonic() < deadline and not self.stopping:
            connected += self._poll(0.05)
        while self.idle and len(self.answered) < len(self.socks) and not self.stopping:
            if time.monotonic() >= deadline:
                break
            self._poll(0.05)
        print("ready", len(self.socks), flush=True)
        next_tick = time.monotonic() + self.interval
        while not self.stopping:
            now = time.monotonic()
            if now >= next_tick:
                for s in list(self.socks):
                    if self.lines.get(s, 0) > 0 and not self.idle:
                        self._trickle(s)
                while len(self.socks) < self.count and not self.stopping:
                    if not self._open():
                        break
                next_tick = now + self.interval
            self._poll(max(0.0, min(0.2, next_tick - now)))
        print(
            f"open={len(self.socks)} reconnects={self.reconnects} refused={self.refused}",
            flush=True,
        )
        for s in list(self.socks):
            self._drop(s)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and trickle until SIGTERM or SIGINT."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=500)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--idle", action="store_true", help="hold idle keep-alive connections")
    args = p.parse_args(argv)
    # One descriptor per connection: thousands of idle ones need more than the usual 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.conns + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.conns + 64), hard))
    t = Trickler(args.host, args.port, args.conns, args.interval, args.idle)

    def stop(signum: int, frame: FrameType | None) -> None:
        t.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    t.run(args.connect_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
