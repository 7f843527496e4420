"""The server side's CPU cost of TLS I/O per round trip, for the two designs wsgid's TLS can take.

It decides which design wsgid's workers use (issue 15: "measure it against wrapped non-blocking
sockets, and keep the faster one that is correct"):

- (a) ``wrapped``: a non-blocking ``ssl.SSLSocket`` (``SSLContext.wrap_socket(...,
  server_side=True, do_handshake_on_connect=False)``), its ``recv``/``send`` retried on
  ``SSLWantReadError``/``SSLWantWriteError``: OpenSSL does the socket I/O, a record at a time;
- (b) ``memory-bio``: a plain non-blocking socket and an ``SSLObject`` on two ``ssl.MemoryBIO``
  (``SSLContext.wrap_bio``): ciphertext read with ``sock.recv`` into the incoming BIO, the
  outgoing BIO's bytes written with ``sock.send``, one system call each way per event.

One keep-alive TLS connection over loopback; the client, blocking ``ssl`` in another process,
sends a request and reads its response ``--count`` times: a small exchange (100 B in, 200 B out,
like wrk's hello) and a 16 KiB echo (like the ``post`` scenario). The server waits for each
request in a level-triggered epoll, as wsgid's loop does, then reads it and writes the response.
The number is the server process's CPU time (user + system, ``getrusage``) per round trip, after
the handshake and a warm-up, median of ``--runs`` connections; the designs alternate. TLS 1.3
with the bench's ECDSA P-256 certificate (openssl CLI). Server pinned to CPU 1, client to CPU 0,
where the machine has them:

    .venv/bin/python bench/tls_io.py [--count 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import select
import socket
import ssl
import statistics
import sys
import tempfile
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # the bench package
# E402 below: these imports need the path set above.

from bench.layout import CLIENT_CPU, HOST, SERVER_CPU, TLS_CERT, TLS_KEY  # noqa: E402
from bench.prerequisites import make_certificate  # noqa: E402
from bench.scenarios import POST_BODY  # noqa: E402

WARMUP = 500  # round trips before the measured ones
RECV_SIZE = 256 * 1024


def message(head: bytes, size: int) -> bytes:
    """An HTTP/1.1 head of ``size`` bytes: ``head`` and a padding header."""
    return (head + b"X-Pad: ").ljust(size - 4, b"p") + b"\r\n\r\n"


# (request, response) of each shape.
SHAPES: dict[str, tuple[bytes, bytes]] = {
    "small (100 B in, 200 B out)": (
        message(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", 100),
        message(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 200),
    ),
    "16 KiB echo": (
        message(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 16384\r\n", 100)
        + POST_BODY,
        message(b"HTTP/1.1 200 OK\r\nContent-Length: 16384\r\n", 200) + POST_BODY,
    ),
}


class Waiter:
    """Level-triggered epoll on one socket, as a worker's loop waits for its connections."""

    def __init__(self, sock: socket.socket) -> None:
        self.fd = sock.fileno()
        self.epoll = select.epoll()
        self.events = select.EPOLLIN
        self.epoll.register(self.fd, self.events)

    def wait(self, events: int) -> None:
        if events != self.events:
            self.epoll.modify(self.fd, events)
            self.events = events
        self.epoll.poll()


class Connection:
    """What the server loop asks of a server-side TLS connection, in either design."""

    def __init__(self, sock: socket.socket, waiter: Waiter) -> None:
        self.sock = sock
        self.waiter = waiter
        self.buf = memoryview(bytearray(RECV_SIZE))

    def handshake(self) -> None:
        raise NotImplementedError

    def read(self) -> int:
        """Plaintext bytes read on a readiness event (0: none yet)."""
        raise NotImplementedError

    def buffered(self) -> bool:
        """Whether a read is due with no readiness event: data epoll cannot see."""
        return False

    def write(self, data: bytes) -> None:
        raise NotImplementedError


class Wrapped(Connection):
    """(a) a non-blocking ``SSLSocket``."""

    def __init__(self, ctx: ssl.SSLContext, sock: socket.socket, waiter: Waiter) -> None:
        super().__init__(sock, waiter)
        self.tls = self.sock = ctx.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )  # it takes over the file descriptor

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.waiter.wait(select.EPOLLIN)
            except ssl.SSLWantWriteError:
                self.waiter.wait(select.EPOLLOUT)

    def read(self) -> int:
        """A record (OpenSSL reads its header, then its body), and whatever plaintext OpenSSL
        holds (``pending``, which epoll cannot see); records left in the socket wake epoll."""
        got = 0
        while True:
            try:
                n = self.tls.recv_into(self.buf)
            except ssl.SSLWantReadError:
                return got
            if not n:
                raise ConnectionError("the client closed")
            got += n
            if not self.tls.pending():
                return got

    def write(self, data: bytes) -> None:
        """OpenSSL writes a record a system call; retried with the same bytes while full."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.tls.send(view) :]
            except ssl.SSLWantWriteError:
                self.waiter.wait(select.EPOLLOUT)


class MemoryBio(Connection):
    """(b) a plain non-blocking socket and an ``SSLObject`` on memory BIOs."""

    def __init__(self, ctx: ssl.SSLContext, sock: socket.socket, waiter: Waiter) -> None:
        super().__init__(sock, waiter)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        # The client's first request can come in the recv that brought its Finished: it is
        # in the incoming BIO, not in the kernel, when the handshake ends.
        self.early = False

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                self.early = self.incoming.pending > 0
                return
            except ssl.SSLWantReadError:
                self.flush()
                self.waiter.wait(select.EPOLLIN)
                self.fill()

    def fill(self) -> None:
        """One ``recv`` of ciphertext into the incoming BIO."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("the client closed")
        self.incoming.write(data)

    def flush(self) -> None:
        """Send the outgoing BIO's bytes, waiting while the socket is full."""
        view = memoryview(self.outgoing.read())
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                self.waiter.wait(select.EPOLLOUT)

    def read(self) -> int:
        """One ``recv``, then every record it completed, decrypted from memory."""
        self.early = False
        self.fill()
        got = 0
        while True:
            try:
                # With a buffer, read returns a count (typeshed says bytes).
                got += cast(int, self.tls.read(RECV_SIZE, self.buf))
            except ssl.SSLWantReadError:
                return got

    def buffered(self) -> bool:
        return self.early

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()


Design = type[Wrapped] | type[MemoryBio]


def serve(conn: Connection, waiter: Waiter, request: int, response: bytes, count: int) -> None:
    """Answer ``count`` requests of ``request`` bytes, one at a time."""
    for _ in range(count):
        got = 0
        while got < request:
            if not conn.buffered():
                waiter.wait(select.EPOLLIN)
            got += conn.read()
        conn.write(response)


def client(port: int, cafile: str, request: bytes, response: int, count: int) -> None:
    """The other end (blocking ``ssl``, verifying the certificate), in its own process."""
    pin(CLIENT_CPU)
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((HOST, port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            view = memoryview(bytearray(response))
            for _ in range(count):
                tls.sendall(request)
                got = 0
                while got < response:
                    n = tls.recv_into(view[got:])
                    if not n:
                        raise ConnectionError("the server closed")
                    got += n


def pin(cpu: str) -> None:
    """Keep this process on ``cpu`` where the machine has it."""
    if int(cpu) in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {int(cpu)})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(ctx: ssl.SSLContext, cafile: str, design: Design, shape: str, count: int) -> float:
    """Server CPU µs per round trip over one new connection."""
    request, response = SHAPES[shape]
    with socket.create_server((HOST, 0)) as listener:
        listener.settimeout(30)
        args = (listener.getsockname()[1], cafile, request, len(response), WARMUP + count)
        proc = multiprocessing.get_context("spawn").Process(target=client, args=args)
        proc.start()
        sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    waiter = Waiter(sock)
    conn = design(ctx, sock, waiter)
    try:
        conn.handshake()
        serve(conn, waiter, len(request), response, WARMUP)
        t0 = cpu_seconds()
        serve(conn, waiter, len(request), response, count)
        spent = cpu_seconds() - t0
    finally:
        conn.sock.close()
        waiter.epoll.close()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"the client exited with {proc.exitcode}")
    return spent / count * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20000, help="round trips measured per run")
    p.add_argument("--runs", type=int, default=3, help="connections per design and shape")
    a = p.parse_args()
    pin(SERVER_CPU)
    with tempfile.TemporaryDirectory() as tmp:
        make_certificate(Path(tmp))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.load_cert_chain(Path(tmp) / TLS_CERT, Path(tmp) / TLS_KEY)
        cafile = str(Path(tmp) / TLS_CERT)
        print(f"{ssl.OPENSSL_VERSION}; {a.count} round trips, median of {a.runs} connections")
        print("| shape | (a) SSLSocket µs | (b) MemoryBIO µs | b / a |")
        print("| --- | ---: | ---: | ---: |")
        for shape in SHAPES:
            times: dict[Design, list[float]] = {Wrapped: [], MemoryBio: []}
            for _ in range(a.runs):
                for design in times:
                    times[design].append(measure(ctx, cafile, design, shape, a.count))
            wrapped, bio = (statistics.median(times[d]) for d in (Wrapped, MemoryBio))
            print(f"| {shape} | {wrapped:.1f} | {bio:.1f} | {bio / wrapped:.2f} |")


if __name__ == "__main__":
    main()
