"""Taking new connections from a worker's listeners, and backing off when that fails.

Owns: the listeners as the loop sees them (which epoll watches, with
EPOLLEXCLUSIVE so that one worker wakes per new connection), accepting one
connection as a non-blocking socket with its environ base and the PROXY
protocol its listener requires, and what an accept that fails means. How
many a turn takes (the fairness rule) and what becomes of a connection once
taken are the loop's (`loop.py`).

A failure that belongs to one connection (it was reset before it was taken)
is skipped: the next may be fine. Any other (EMFILE, ENFILE, ENOBUFS, ENOMEM,
a broken listener) would fail again at once while the listener stays
readable, so the listeners are left alone for a back-off, doubling from 50 ms
to 1 s while the failures last, and `accept.failed` (and `accept.recovered`)
is logged at most once every 5 s (with how many it left out). A worker out of
descriptors twice within that time (with or without accepts that worked in
between: a closed connection frees one now and then), with its own connections
a small share of its limit, has lost them to the application (a leak, most
likely): only a new process gets them back, so the worker is told to stop
(`worker.fd_exhausted`).
"""

from __future__ import annotations

import errno
import os
import resource
import select
import socket
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from wsgid.http.exchange import ErrorLog
from wsgid.http.proxy_protocol import Mode as ProxyMode
from wsgid.listeners import Listener
from wsgid.workers import unpatched

AF_UNIX: Final = int(socket.AF_UNIX)
# accept(2) errors that belong to one connection (Linux reports a pending
# network error of the new connection through accept; see its man page).
CONNECTION_ERRORS: Final = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
    errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
    errno.ETIMEDOUT,
})  # fmt: skip
# The first and the longest back-off, in seconds. Not Final: see scoreboard.DURATION_BUCKETS.
ACCEPT_BACKOFF = (0.05, 1.0)
ACCEPT_LOG_INTERVAL: Final = 5.0  # at most one accept.failed line per this many seconds


class Acceptor(NamedTuple):
    """How a listener's connections are accepted, their environ base, and their PROXY header."""

    accept: Callable[[], tuple[int, Any]]  # the listener's raw accept: (fd, address)
    family: int
    kind: int  # socket type
    proto: int
    base: dict[str, Any]
    proxy: ProxyMode | None  # the PROXY protocol its connections start with; None: none
    tls: bool  # its connections are HTTPS


class Admission:
    """A worker's listeners: watching them, accepting from them, backing off."""

    def __init__(
        self,
        listeners: list[Listener],
        epoll: select.epoll,
        log: ErrorLog,
        base: Callable[[Listener], dict[str, Any]],
        proxy: Callable[[Listener], ProxyMode | None],
        tls: Callable[[Listener], bool],
    ) -> None:
        self.epoll = epoll
        self.log = log
        self.listeners: dict[int, Listener] = {lst.fileno(): lst for lst in listeners}
        self.acceptors = {
            fd: _acceptor(lst, base(lst), proxy(lst), tls(lst))
            for fd, lst in self.listeners.items()
        }
        for listener in listeners:
            if listener.sock.family != socket.AF_UNIX:
                # Responses go out whole, so Nagle would only delay them. Linux
                # gives accepted sockets their listener's TCP_NODELAY: one call
                # here instead of one per connection.
                listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.watching = False
        self.backoff = 0.0  # the current back-off; 0 = the last accept worked
        self.resume_at = 0.0  # when the current back-off ends; 0 = none
        self.log_after = 0.0  # accept.failed is logged again from then on
        self.suppressed = 0  # accept.failed lines not logged since the last one
        self.last_emfile = float("-inf")  # when an accept last failed for want of descriptors

    def watch(self, on: bool) -> None:
        """Start or stop watching the listeners (at the connection cap, on stop)."""
        if on == self.watching:
            return
        self.watching = on
        for fd in self.listeners:
            if on:
                self.epoll.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
            else:
                self.epoll.unregister(fd)

    def accept(self, fd: int) -> tuple[socket.socket, dict[str, Any], ProxyMode | None, bool]:
        """The next connection waiting on listener `fd`, non-blocking, its environ base,
        the PROXY protocol it must start with (None: none) and whether it is HTTPS.

        Raises what accept(2) raises: BlockingIOError when none is waiting; an
        errno in CONNECTION_ERRORS for a connection of its own; else see `failed`.
        """
        accept, family, kind, proto, base, proxy, tls = self.acceptors[fd]
        conn_fd, addr = accept()
        if self.backoff:
            self._recovered()
        sock = unpatched.SOCKET(family, kind, proto, conn_fd)
        sock.setblocking(False)
        if family == AF_UNIX:  # TCP_NODELAY: inherited from the listener
            return sock, base, proxy, tls
        conn_base = base.copy()
        conn_base["REMOTE_ADDR"] = addr[0]
        conn_base["REMOTE_PORT"] = str(addr[1])
        return sock, conn_base, proxy, tls

    def failed(self, exc: OSError, now: float, connections: int) -> bool:
        """An accept failed for the listener, not for one connection: back off.

        True when the worker should stop: its descriptors are gone while its
        `connections` do not hold them.
        """
        if exc.errno == errno.EINVAL:
            # The master shut the listener down (a stop began); the TERM
            # telling us so is on its way. Stop watching it.
            self.watch(False)
            return False
        first, last = ACCEPT_BACKOFF
        repeated = self.backoff > 0
        self.backoff = min(last, self.backoff * 2) if repeated else first
        out_of_descriptors = exc.errno == errno.EMFILE
        again = out_of_descriptors and now - self.last_emfile < ACCEPT_LOG_INTERVAL
        if out_of_descriptors:
            self.last_emfile = now
        self.resume_at = now + self.backoff
        self.watch(False)
        if now >= self.log_after:
            self.log.warning(
                "accept.failed",
                error=str(exc),
                retry_in=self.backoff,
                suppressed=self.suppressed,
            )
            self.suppressed = 0
            self.log_after = now + ACCEPT_LOG_INTERVAL
        else:
            self.suppressed += 1
        return again and self._descriptors_lost(connections)

    def resume(self, now: float) -> bool:
        """Whether a back-off ended by `now` (it is then over)."""
        if self.resume_at and now >= self.resume_at:
            self.resume_at = 0.0
            return True
        return False

    def close(self) -> None:
        """A stop began: stop watching the listeners and close them (the master keeps its own)."""
        self.watch(False)
        for listener in self.listeners.values():
            listener.sock.close()

    def _recovered(self) -> None:
        self.backoff = 0.0
        # At most as often as accept.failed: failures alternating with accepts that work
        # would otherwise log a line a connection (the ones not logged stay counted).
        if self.suppressed and time.monotonic() >= self.log_after:
            self.log.warning("accept.recovered", suppressed=self.suppressed)
            self.suppressed = 0

    def _descriptors_lost(self, connections: int) -> bool:
        """Whether this process's descriptors are gone and its `connections` do not hold them.

        Still out of descriptors after a back-off, with its own connections a
        small share of the limit: the rest was taken (leaked, most likely) by
        the application, and only a new process gets it back.
        """
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if connections * 2 >= limit:
            return False  # its own connections: they free descriptors as they close
        try:
            open_fds = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
        except OSError:
            open_fds = limit  # EMFILE: every descriptor below the limit is taken
        self.log.error(
            "worker.fd_exhausted",
            open_fds=open_fds,
            limit=limit,
            connections=connections,
            action="stopping",
        )
        return True


def _acceptor(
    listener: Listener, base: dict[str, Any], proxy: ProxyMode | None, tls: bool
) -> Acceptor:
    sock = listener.sock
    # socket.accept() is `_accept()` plus a socket object built from the
    # listener's family, type and proto, each read back through an enum
    # conversion (measured: about 5 µs a connection with the rest of the
    # wrapper); these never change, so they are read once here.
    raw_accept = sock._accept  # type: ignore[attr-defined]  # what accept() wraps
    return Acceptor(raw_accept, int(sock.family), int(sock.type), sock.proto, base, proxy, tls)
