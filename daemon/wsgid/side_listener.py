"""The master's side listeners: small HTTP answers from the master, apart from the app.

Owns: a listening socket the master serves itself, the connections it accepts, and turning
each request into the answer of its path. Two are made of it: `metrics_bind` (the health
probes and `/metrics`) and `control_socket` (`wsgid status`, which also checks who
connects). What a path answers is the master's (`Page`s it gives); this module answers
a path it was not given with 404, a method other than GET or HEAD with 405, and a request
that breaks HTTP/1.1 with the 4xx of wsgid's parser (the same parser as the app's traffic,
`wsgid.http`).

Every answer closes its connection, and `Cache-Control: no-store` keeps a cache in between
from answering for the server. The master never blocks on a probe: the sockets are
non-blocking, at most MAX_CONNECTIONS are open at once (a new one closes the oldest, so
that idle connections cannot crowd out a probe), and a connection that has not sent its head
and taken its answer within DEADLINE seconds is closed. A probe costs the master one short
turn of its loop; when neither is set this module is not even imported.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence

from wsgid.http.date import Dates
from wsgid.http.errors import ProtocolError, error_response
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request
from wsgid.http.response import Response
from wsgid.listeners import Listener, close_all
from wsgid.logs import clock

MAX_CONNECTIONS = 64
DEADLINE = 5.0  # seconds a probe has to send its request and read the answer
READ_SIZE = 8192
# A probe's head is a request line and a few fields: nothing near the app's limits.
LIMITS = Limits(request_line=1024, fields=32, field_size=1024)
TEXT = "text/plain; charset=utf-8"
_NO_STORE = ("Cache-Control", "no-store")

# What a path answers: its status line, Content-Type and body, made when it is asked for.
Page = tuple[str, str, bytes]


class _Probe:
    """One accepted connection: its parser until the head is in, then the answer to send."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.deadline = now + DEADLINE
        self.parser: RequestParser | None = RequestParser(LIMITS)
        self.out = b""  # the answer not yet sent

    def close(self) -> None:
        if self.parser is not None:
            self.parser.close()
            self.parser = None
        self.sock.close()


class SideListener:
    """A side listener and its open connections, driven by the master's loop.

    `pages`: what each path answers. `admit(sock)`, if given, is asked about each accepted
    connection; one it refuses is closed unanswered.
    """

    def __init__(
        self,
        listener: Listener,
        pages: Mapping[bytes, Callable[[], Page]],
        admit: Callable[[socket.socket], bool] | None = None,
    ) -> None:
        self.listener = listener
        self.pages = pages
        self.admit = admit
        self._dates = Dates(clock.http_date)
        self._probes: dict[int, _Probe] = {}

    def __str__(self) -> str:
        return str(self.listener)

    # what the loop waits on

    def readable(self) -> list[int]:
        """Descriptors to wait on for reading: the listener, and the probes still sending."""
        fds = [self.listener.fileno()]
        fds += [fd for fd, probe in self._probes.items() if not probe.out]
        return fds

    def writable(self) -> list[int]:
        """Probes whose answer the kernel did not take at once."""
        return [fd for fd, probe in self._probes.items() if probe.out]

    def next_deadline(self) -> float | None:
        """When the oldest open probe runs out of time (None with none open)."""
        return min((p.deadline for p in self._probes.values()), default=None)

    # serving

    def handle(self, readable: Sequence[int], writable: Sequence[int], now: float) -> None:
        """Accept, read and answer whatever `select` found ready; close expired probes."""
        for fd in readable:
            if fd == self.listener.fileno():
                self._accept(now)
            elif fd in self._probes:
                self._read(self._probes[fd])
        for fd in writable:
            probe = self._probes.get(fd)
            if probe is not None and probe.out:  # (not a probe accepted since, on the same fd)
                self._send(probe)
        for fd, probe in list(self._probes.items()):
            if now >= probe.deadline:
                self._drop(fd, probe)

    def _accept(self, now: float) -> None:
        for _ in range(MAX_CONNECTIONS):
            try:
                sock, _ = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE...: the next probe will try again
                return
            if len(self._probes) >= MAX_CONNECTIONS:
                # Make room by closing the oldest: a flood of connections that send nothing
                # then cannot keep a real probe out, which is answered as it arrives.
                oldest = min(self._probes.items(), key=lambda item: item[1].deadline)
                self._drop(*oldest)
            if self.admit is not None and not self.admit(sock):
                sock.close()
                continue
            sock.setblocking(False)
            probe = _Probe(sock, now)
            self._probes[sock.fileno()] = probe
            self._read(probe)  # the request usually came with the connection

    def _read(self, probe: _Probe) -> None:
        try:
            data = probe.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        parser = probe.parser
        if not data or parser is None:  # gone before its answer, or sending more after it
            self._drop(probe.sock.fileno(), probe)
            return
        try:
            parser.feed(data)
        except ProtocolError as exc:
            self._answer(probe, error_response(exc.status, self._dates))
            return
        if parser.ready:
            self._answer(probe, self._respond(parser.ready[0]))

    def _respond(self, req: Request) -> bytes:
        """The whole answer to `req`."""
        page = self.pages.get(req.path)
        extra = []
        if req.method not in ("GET", "HEAD"):
            # RFC 9110 §15.5.6: a 405 says which methods the resource has.
            status, kind, data = "405 Method Not Allowed", TEXT, b"405 Method Not Allowed\n"
            extra.append(("Allow", "GET, HEAD"))
        elif page is None:
            status, kind, data = "404 Not Found", TEXT, b"404 Not Found\n"
        else:
            status, kind, data = page()
        headers = [("Content-Type", kind), _NO_STORE, *extra, ("Content-Length", str(len(data)))]
        response = Response(req, self._dates, worker_keeps=False)
        response.start_response(status, headers)
        return response.whole(data)

    def _answer(self, probe: _Probe, data: bytes) -> None:
        if probe.parser is not None:
            probe.parser.close()
            probe.parser = None
        probe.out = data
        self._send(probe)

    def _send(self, probe: _Probe) -> None:
        try:
            sent = probe.sock.send(probe.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(probe.out)  # the client left: nothing more to send
        probe.out = probe.out[sent:]
        if not probe.out:
            with contextlib.suppress(OSError):
                probe.sock.shutdown(socket.SHUT_WR)
            self._drop(probe.sock.fileno(), probe)

    def _drop(self, fd: int, probe: _Probe) -> None:
        del self._probes[fd]
        probe.close()

    # ending

    def close(self, unlink: bool = True) -> None:
        """Close the probes and the listener (unlinking a unix socket file it created)."""
        for fd, probe in list(self._probes.items()):
            self._drop(fd, probe)
        close_all([self.listener], unlink=unlink)

    def close_in_child(self) -> None:
        """In a forked worker: close the copies of the master's sockets, touching nothing else.

        A probe's connection held open by a worker would outlive the master's close of it,
        and a worker has no business accepting probes.
        """
        for probe in self._probes.values():
            probe.sock.close()
        self.listener.sock.close()
