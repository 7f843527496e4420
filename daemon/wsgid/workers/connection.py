"""One client connection of the epoll loop, and the channel its requests' exchanges use.

Owns: what the loop knows of a connection (its socket, its parser, its queue
of output the kernel did not take yet, and where it stands: reading its PROXY
header, reading a head, awaiting a small body, busy in a pool thread,
closing, lingering) and the `exchange.Channel` over it. While the application runs (sync: inline,
gthread: in a pool thread), `send` queues past a high-water mark only after
waiting (bounded by `timeout`) for the client to read, and sends a large body after its
head by one vectored send, never copied onto it (`SEPARATE_FROM`); `send_last`, for the
bytes that complete a response, may leave them in the queue for the loop to
send with other responses (loop.py, "Held responses"); `fill` reads more body
bytes, waiting for them the same way; `sendfile` sends a file body with
sendfile(2). A wait blocks the thread (poll), or, in a cooperative kind, waits in its
event loop (`waiter`). A wait never outlasts the request's deadline (the kind decides
when that is), so a slow client fails the request before the master would
take the worker for hung. A wait to write gives up after the I/O timeout only if
the client took nothing in it: the kernel reports a socket writable again only
once much of its send queue (megabytes, autotuned) drained, which a client
reading slowly but steadily takes longer than that to do (`unsent`). Everything else about
a connection (registering it with epoll, its timeouts, closing it) is the loop's (`loop.py`).
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import sys
import termios
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any, ClassVar, Final

from wsgid.http.errors import BodyError, ProtocolError
from wsgid.http.parser import RequestParser
from wsgid.http.proxy_protocol import ProxyHeaderReader
from wsgid.http.request import Request
from wsgid.workers import unpatched

RECV_SIZE: Final = 65536
# Past this much queued output, `send` waits for the client instead of
# buffering more of a streamed response.
HIGH_WATER: Final = 4 * 1024 * 1024
# From this size on, a body goes after its head by one vectored send (sendmsg(2)) rather
# than copied onto it: measured on loopback, the copy costs more past about 32 KiB, and
# past malloc's mmap threshold (128 KiB) each copy also faults in fresh pages: a 1 MiB
# body took about 135 page faults per response (docs/performance.md).
SEPARATE_FROM: Final = 32 * 1024
# What `handshake` says (TLS): done, or waiting for the socket to be readable or writable.
DONE: Final = 0
WANT_READ: Final = 1
WANT_WRITE: Final = 2


def unsent(fd: int) -> int:
    """The bytes the socket's send queue holds that the client has not taken yet (Linux's
    SIOCOUTQ, which is TIOCOUTQ; TCP: not acknowledged, UNIX: not read); -1 where it cannot
    say. A count that went down since the last look is a client still reading."""
    try:
        answer = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return -1
    return int.from_bytes(answer, sys.byteorder, signed=True)


def no_deadline() -> float:
    """The deadline of a wait that only the I/O timeout bounds."""
    return float("inf")


class Connection:
    """One client connection; also the `exchange.Channel` for its requests.

    A plain TCP or UNIX connection; `tls_connection.TLSConnection` is the HTTPS one.
    """

    tls: ClassVar[bool] = False

    __slots__ = (
        "awaiting",
        "base",
        "body_since",
        "busy",
        "client_closed",
        "closing",
        "deadline",
        "ended",
        "error",
        "events",
        "fd",
        "handshaking",
        "head_started",
        "holding",
        "holds",
        "io_timeout",
        "last_active",
        "linger_until",
        "out",
        "out_size",
        "outq",
        "parser",
        "peer",
        "proxy",
        "proxy_allowed",
        "responded",
        "sends",
        "sock",
        "timed_out",
        "timeout_answer",
        "waiter",
    )

    def __init__(
        self,
        sock: socket.socket,
        parser: RequestParser,
        base: dict[str, Any],
        io_timeout: float,
        deadline: Callable[[], float] = no_deadline,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = parser
        self.base = base
        self.peer: str = base["REMOTE_ADDR"]
        self.out: deque[bytes | memoryview] = deque()
        self.out_size = 0
        self.outq = -1  # `unsent` at the loop's last look while output waited (its sweep)
        # Sends, and waits in which the client took bytes: gthread's pool check reads that a
        # request still makes progress (a download, an event stream), never that it is stuck.
        self.sends = 0
        self.events = 0  # what epoll watches for; 0 = not registered (yet, or a thread owns it)
        self.closing = False  # close once the output queue is empty
        self.client_closed = False  # the closing request was the client's last (see _close)
        # A pool thread owns the connection (gthread): the loop neither reads,
        # writes nor times it out until the thread hands it back.
        self.busy = False
        # A protocol error found after complete requests on the same
        # connection: those are answered first, in order, then this one.
        self.error: ProtocolError | None = None
        self.linger_until = 0.0  # >0: write side shut, draining input until then
        self.last_active = time.monotonic()
        self.head_started = 0.0
        # The request whose small body the loop waits for, and since when
        # (its deadline: header_timeout from the end of its head).
        self.awaiting: Request | None = None
        self.body_since = 0.0
        self.io_timeout = io_timeout
        # When waits for the client must give up: the current request's
        # `timeout` budget runs out (the worker kind knows when).
        self.deadline = deadline
        # The PROXY header still to read before any HTTP (None: none, or read), and
        # whether the peer may send one (proxy_allow_ips).
        self.proxy: ProxyHeaderReader | None = None
        self.proxy_allowed = False
        # Some of the current response went to the socket or its queue: set
        # before every send, read by gthread's request timeout (which answers
        # 503 only while this is False).
        self.responded = False
        # Its request ran past request_timeout and was answered (503) or cut by the worker:
        # what the app answers in the end is never sent, counted nor logged.
        self.timed_out = False
        # What the worker sent in the app's place then (`timed_out_answer`: the 503), for
        # the post_request hook to see what the client got; b"" if it cut the connection.
        self.timeout_answer = b""
        # TLS: the handshake is not over yet; the client's close_notify came with bytes
        # still to handle (what a plain client's FIN is once they are read).
        self.handshaking = False
        self.ended = False
        # `send_last` may keep a response's last bytes in the queue for the loop to send
        # with others (the loop sets it, as its kind does); it did, and the loop has not
        # taken them yet.
        self.holds = False
        self.holding = False
        # How a wait for the client waits: None, in this thread (poll); a cooperative
        # kind's function (fd, POLLIN or POLLOUT, seconds) -> ready, by its event loop.
        self.waiter: Callable[[int, int, float], bool] | None = None

    def receive(self) -> bytes | None:
        """What the client sent (b"": it closed), or None if nothing came yet. Raises
        OSError when the connection failed."""
        try:
            return self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None

    def start_tls(self, early: bytes = b"") -> None:
        """TLS: begin it (after the PROXY header, if any, with the bytes that came after the
        header); plain: nothing to do."""

    def handshake(self) -> int:
        """Go on with the TLS handshake: DONE, WANT_READ or WANT_WRITE (plain: DONE)."""
        return DONE

    def plain_text_sent(self) -> bool:
        """TLS: whether the client's first byte was text, not a TLS record (plain HTTP sent
        to an HTTPS listener); plain: False."""
        return False

    def cut(self) -> None:
        """The response was cut short (the app failed after it began, or sent less than its
        Content-Length). TLS: close without close_notify, so that the client cannot take
        the end of a cut body for its end; plain: nothing to do (the FIN is all there is)."""

    def shutdown_write(self) -> None:
        """Half-close: the client reads our end of the stream, and we may still read."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    # exchange.Channel

    def send(self, data: bytes, more: bytes = b"") -> None:
        if more and (len(more) < SEPARATE_FROM or not data):
            data += more
            more = b""
        elif not data:
            return
        self.responded = True
        self.sends += 1
        out = self.out
        if out:
            self._enqueue(data, more)
            if self.out_size > HIGH_WATER:
                self.flush_blocking()
            return
        try:
            sent = self.sock.sendmsg((data, more)) if more else self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._enqueue(memoryview(data)[sent:], more)
        elif more and sent - len(data) < len(more):
            self._enqueue(memoryview(more)[sent - len(data) :], b"")

    def send_last(self, data: bytes, more: bytes = b"") -> None:
        # Not held on a connection closing already: gthread's loop took it from this thread
        # (`_take`), whose send must fail now (client.gone), as it would have without holding.
        # Nor a large body: sent now, in one vectored send with its head, where the loop
        # would send the two pieces one by one.
        if self.holds and not self.out and not self.closing and len(more) < SEPARATE_FROM:
            if more:
                data += more
            if not data:
                return
            # Held, not sent: the loop sends the turn's responses together (`_hold`).
            self.responded = True
            self.out.append(data)
            self.out_size += len(data)
            self.holding = True
            return
        # This class's: a subclass's `send_last` gives it wire bytes.
        Connection.send(self, data, more)

    def fill(self) -> None:
        if self.error is not None:
            # The parser already failed on bytes after those the app has:
            # this body cannot be completed.
            error, self.error = self.error, None
            self.closing = True
            raise BodyError(error.reason, status=error.status)
        while True:
            try:
                data = self.receive()
            except OSError as exc:
                raise BodyError(f"reading the request body failed: {exc}") from None
            if data is None:
                if not self._wait(select.POLLIN):
                    raise BodyError(self._stalled("waiting for the request body"), status=408)
                continue
            break
        if not data:
            raise BodyError("the client closed the connection before the body ended")
        self.last_active = time.monotonic()
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.closing = True
            raise BodyError(exc.reason, status=exc.status) from None

    def sendfile(self, file: IO[bytes], count: int | None) -> int:
        self.flush_blocking()
        offset = file.tell()
        fd = file.fileno()
        total = 0
        while count is None or total < count:
            want = RECV_SIZE * 16 if count is None else min(count - total, RECV_SIZE * 16)
            try:
                sent = os.sendfile(self.fd, fd, offset + total, want)
            except BlockingIOError:
                if not self._wait(select.POLLOUT):
                    raise BrokenPipeError(self._stalled("writing a file to the client")) from None
                continue
            if sent == 0:
                break  # the file is shorter than announced
            total += sent
            self.sends += 1
        file.seek(offset + total)
        return total

    def handover(self) -> object:
        # A socket of its own (a duplicate descriptor): the app may close it, as WebSocket
        # libraries do, while the loop still holds the connection. Made through the socket
        # module at the time of the call, so a gevent worker's is gevent's cooperative one.
        sock = socket.socket(fileno=os.dup(self.fd))
        sock.settimeout(None)
        return sock

    # output plumbing

    def _enqueue(self, data: bytes | memoryview, more: bytes) -> None:
        """Queue what the kernel did not take yet (`more` may be empty)."""
        self.out.append(data)
        self.out_size += len(data)
        if more:
            self.out.append(more)
            self.out_size += len(more)

    def flush(self) -> bool:
        """Send queued output without blocking; True once the queue is empty."""
        out = self.out
        sock = self.sock
        while out:
            chunk = out[0]
            try:
                sent = sock.send(chunk)
            except BlockingIOError:
                return False
            self.out_size -= sent
            if sent < len(chunk):
                out[0] = memoryview(chunk)[sent:]
                return False
            out.popleft()
        return True

    def flush_blocking(self) -> None:
        """Flush the queue, waiting (bounded by the I/O timeout) for the client."""
        while not self.flush():
            if not self._wait(select.POLLOUT):
                raise BrokenPipeError(self._stalled("waiting for the client to read"))

    def _stalled(self, doing: str) -> str:
        """Why a wait on the client gave up: the client's silence, or the request's own time
        limit (gthread's `timeout`, `request_timeout`), which is not the client's doing."""
        if self.deadline() <= time.monotonic():
            return f"{doing}: the request reached its time limit (timeout or request_timeout)"
        return f"timed out {doing}"

    def _wait(self, event: int) -> bool:
        """Wait for `event`, at most the I/O timeout and never past the request's deadline;
        to write, the I/O timeout again for as long as the client takes bytes in each."""
        queued = unsent(self.fd) if event == select.POLLOUT else -1
        while True:
            timeout = self.io_timeout
            left = self.deadline() - time.monotonic()
            if left < timeout:
                if left <= 0:
                    return False
                timeout = left
            if self.waiter is not None:
                if self.waiter(self.fd, event, timeout):
                    return True
            else:
                poller = unpatched.POLL()
                poller.register(self.fd, event)
                if poller.poll(timeout * 1000):
                    return True
            now_queued = unsent(self.fd) if queued >= 0 else -1
            if not 0 <= now_queued < queued:
                return False  # a whole I/O timeout and the client took nothing
            queued = now_queued
            self.sends += 1  # progress, for gthread's pool check
