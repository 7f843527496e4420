"""Attack clients of the hardening suite: each one a round of hostile connections to a loopback
wsgid, and what the server did to them.

Owns: the attacks (`HugeHeads`, `Slowloris`, `TrickledBodies`, `Malformed`, `ResetBursts`,
`NonReaders`), their `Tally` (rounds, connections, outcomes, and the answers an attack's rules
say a sound server never gives), `Attacker` (a thread running one attack's rounds until
stopped), and `server_side_sockets` (what /proc/net/tcp says of the server's end of our
connections: state and unread bytes).

Each attack's `round()` opens its connections, does its harm and closes them again (so rounds
never pile up connections), returning early once `stop` is set: a connection still open then is
counted "open at stop" and judged by no rule. The expectations, checked by the soak:
- `Malformed`: every request is answered 4xx and the connection then closed;
- `Slowloris`: the server ends each drip-fed head itself (408 after `header_timeout`);
- `TrickledBodies`: the server ends each drip-fed small body itself, before the attacker gives
  up after `TRICKLE_GIVE_UP` seconds;
- `NonReaders`: the server closes its end of each connection whose client reads nothing;
- `HugeHeads`, `ResetBursts`: no rule here; what they cost shows in the server's memory and fds.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 10.0
# Slack on top of a server timeout before "the server did not act" is called: the sweep runs
# once a second and a loaded machine delays it further.
SERVER_SLACK = 15.0
# wsgid's default `header_timeout` and `timeout`, which the soak runs with.
HEADER_TIMEOUT = 30.0
IO_TIMEOUT = 30.0
# How long a client waits for a malformed request's answer and close (see `Malformed`).
ANSWER_TIMEOUT = HEADER_TIMEOUT + SERVER_SLACK
# Drip-fed bodies give up after this: three times the longest wsgid timeout a small body could
# reasonably be held to (those above).
TRICKLE_GIVE_UP = 3 * max(HEADER_TIMEOUT, IO_TIMEOUT)

TCP_ESTABLISHED = 0x01
TCP_CLOSE_WAIT = 0x08


@dataclass
class Tally:
    """What one kind of attack did over all its rounds."""

    rounds: int = 0
    connections: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    # Answers the attack's rules say a sound server never gives: each fails the soak.
    unexpected: list[str] = field(default_factory=list)
    # Seconds from the attack's bytes to the server ending the connection, where it did.
    held: list[float] = field(default_factory=list)


class Attack:
    """One kind of attack; `round()` runs one round of it against 127.0.0.1:`port`."""

    name: ClassVar[str] = "attack"
    pause: ClassVar[float] = 5.0  # between rounds

    def __init__(self, port: int, stop: threading.Event) -> None:
        self.port = port
        self.stop = stop
        self.tally = Tally()
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def round(self) -> None:
        raise NotImplementedError

    def connect(self, rcvbuf: int = 0) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window advertised from the start is small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((HOST, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def outcome(self, what: str, held: float | None = None) -> None:
        with self._lock:
            self.tally.outcomes[what] += 1
            if held is not None:
                self.tally.held.append(held)

    def unexpected(self, what: str) -> None:
        now = time.time()
        wall = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        with self._lock:
            self.tally.unexpected.append(
                f"{wall} (t=+{time.monotonic() - self.started:.1f}s) {self.name}: {what}"
            )

    def begin_round(self, connections: int) -> None:
        with self._lock:
            self.tally.rounds += 1
            self.tally.connections += connections


class Attacker(threading.Thread):
    """Runs `attack` round after round, `attack.pause` apart, until its stop event is set.

    An exception in a round (the attack's own bug, or the server refusing its connections) is
    kept in `error` and ends the thread; the soak fails with it.
    """

    def __init__(self, attack: Attack) -> None:
        super().__init__(name=f"attack-{attack.name}", daemon=True)
        self.attack = attack
        self.error: BaseException | None = None

    def run(self) -> None:
        stop = self.attack.stop
        try:
            while not stop.is_set():
                self.attack.round()
                stop.wait(self.attack.pause)
        except BaseException as exc:  # reported by the soak, with its traceback
            self.error = exc


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def status_of(data: bytes) -> str:
    """`answered NNN` for the start of a response, else what the bytes were."""
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        return f"answered {parts[1].decode()}"
    return f"sent garbage {line[:40]!r}"


def server_side_sockets(
    server_port: int, client_ports: Iterable[int]
) -> dict[int, tuple[int, int]]:
    """The server's end of our connections: client port -> (TCP state, bytes it has not read).

    A client port missing from the answer has no server-side socket any more.
    """
    wanted = set(client_ports)
    found: dict[int, tuple[int, int]] = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            cols = row.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port in wanted:
                rx_queue = int(cols[4].split(":")[1], 16)
                found[remote_port] = (int(cols[3], 16), rx_queue)
    return found


# ----------------------------------------------------------------------------- the attacks


class HugeHeads(Attack):
    """`count` connections each send `GET / HTTP/1.1`, `Host` and a field `X-Big` whose value is
    `size` bytes of `a`, all at once, and never finish the head; once every head is sent or
    answered (a minute at most) and the server has read what it was sent (10 s at most), all
    close.

    What a server that buffers unfinished heads whole costs shows in its memory.
    """

    name: ClassVar[str] = "huge_heads"
    pause: ClassVar[float] = 20.0

    def __init__(
        self, port: int, stop: threading.Event, count: int = 300, size: int = 800 * 1024
    ) -> None:
        super().__init__(port, stop)
        self.count = count
        self.payload = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size

    def round(self) -> None:
        self.begin_round(self.count)
        socks: list[socket.socket] = []
        sel = selectors.DefaultSelector()
        try:
            for i in range(self.count):
                sock = self.connect()
                sock.setblocking(False)
                socks.append(sock)
                sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, data=i)
            sending = self._pump(sel, socks)
            self._wait_read([s.getsockname()[1] for s in socks if s in sel.get_map()])
            for key in list(sel.get_map().values()):
                sock = socks[key.data]
                if sock in sending:
                    self.outcome("still sending at the end")
                    continue
                try:
                    self.outcome(self._read_end(sock))
                except BlockingIOError:
                    self.outcome("whole head sent, no answer")
        finally:
            sel.close()
            for sock in socks:
                sock.close()

    def _pump(self, sel: selectors.BaseSelector, socks: list[socket.socket]) -> set[socket.socket]:
        """Send every head; a server answer or close ends that connection's part.

        Returns the connections still sending when the round had to end (stop, or a minute).
        """
        payload = memoryview(self.payload)
        sent = dict.fromkeys(socks, 0)
        deadline = time.monotonic() + 60
        while sent and not self.stop.is_set() and time.monotonic() < deadline:
            for key, events in sel.select(timeout=1.0):
                sock = socks[key.data]
                if events & selectors.EVENT_READ:
                    sel.unregister(sock)
                    sent.pop(sock, None)
                    self.outcome(self._read_end(sock))
                    continue
                if sock not in sent:
                    continue
                try:
                    sent[sock] += sock.send(payload[sent[sock] : sent[sock] + 262144])
                except BlockingIOError:
                    continue
                except OSError as exc:
                    sel.unregister(sock)
                    sent.pop(sock)
                    self.outcome(f"send failed: {errno.errorcode.get(exc.errno or 0)}")
                    continue
                if sent[sock] == len(payload):
                    del sent[sock]
                    sel.modify(sock, selectors.EVENT_READ, data=key.data)
        return set(sent)

    def _wait_read(self, ports: list[int]) -> None:
        """Poll until the server has read what we sent on the connections still open, so it
        holds all of it at once (10 s at most)."""
        deadline = time.monotonic() + 10
        while not self.stop.is_set() and time.monotonic() < deadline:
            sockets = server_side_sockets(self.port, ports)
            if not any(unread for _state, unread in sockets.values()):
                return
            time.sleep(0.1)

    @staticmethod
    def _read_end(sock: socket.socket) -> str:
        """What the server did: answered, closed or reset (BlockingIOError: nothing yet)."""
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            raise
        except OSError as exc:
            return f"reset by the server ({errno.errorcode.get(exc.errno or 0)})"
        return status_of(data) if data else "closed by the server, no answer"


class DripFeed(Attack):
    """`count` connections each send `first` at once, then one byte of `drip` every `interval`
    seconds; the server is expected to end each of them itself within `give_up` seconds."""

    count: ClassVar[int] = 50
    interval: ClassVar[float] = 1.0
    give_up: ClassVar[float] = 60.0
    first: ClassVar[bytes] = b""
    drip: ClassVar[bytes] = b""

    def round(self) -> None:
        self.begin_round(self.count)
        started: dict[socket.socket, float] = {}
        sel = selectors.DefaultSelector()
        try:
            for _ in range(self.count):
                sock = self.connect()
                sock.sendall(self.first)
                sock.setblocking(False)
                started[sock] = time.monotonic()
                sel.register(sock, selectors.EVENT_READ)
            self._drip(sel, started)
        finally:
            sel.close()
            for sock in started:
                sock.close()

    def _drip(self, sel: selectors.BaseSelector, started: dict[socket.socket, float]) -> None:
        begun = time.monotonic()
        next_byte = begun + self.interval
        sent = 0
        while sel.get_map():
            now = time.monotonic()
            if self.stop.is_set():
                for _ in sel.get_map():
                    self.outcome("open at stop")
                return
            if now - begun > self.give_up:
                held = len(sel.get_map())
                for _ in range(held):
                    self.outcome(f"held by the server for {self.give_up:.0f} s")
                self.unexpected(
                    f"the server kept {held} of {self.count} drip-fed connections open for "
                    f"{self.give_up:.0f} s ({len(self.first)} bytes at once, then {sent} more, "
                    f"one every {self.interval:.0f} s)"
                )
                return
            if now >= next_byte:
                byte = self.drip[sent % len(self.drip) : sent % len(self.drip) + 1]
                sent += 1
                next_byte += self.interval
                for key in list(sel.get_map().values()):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    with contextlib.suppress(OSError):  # ended: the read below says how
                        sock.send(byte)
            for key, _events in sel.select(timeout=max(0.0, next_byte - time.monotonic())):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    what = f"reset by the server ({errno.errorcode.get(exc.errno or 0)})"
                else:
                    what = status_of(data) if data else "closed by the server, no answer"
                sel.unregister(sock)
                self.outcome(what, held=time.monotonic() - started[sock])


class Slowloris(DripFeed):
    """Request heads sent one byte a second (a field value that never ends): the server must
    answer 408 and close once `header_timeout` (default 30 s) has passed."""

    name: ClassVar[str] = "slowloris"
    interval: ClassVar[float] = 1.0
    give_up: ClassVar[float] = HEADER_TIMEOUT + SERVER_SLACK
    first: ClassVar[bytes] = b"G"
    drip: ClassVar[bytes] = b"ET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096


class TrickledBodies(DripFeed):
    """A complete head announcing a 64-byte body, then one body byte every 2 s (the body would
    take 128 s): the server must end the connection before the attacker gives up."""

    name: ClassVar[str] = "trickled_bodies"
    interval: ClassVar[float] = 2.0
    give_up: ClassVar[float] = TRICKLE_GIVE_UP
    first: ClassVar[bytes] = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n"
    drip: ClassVar[bytes] = b"t"


# Requests any HTTP/1.1 server must refuse with a 4xx (RFC 9110/9112), each on its own
# connection, which must then be closed.
MALFORMED: dict[str, bytes] = {
    "cl-and-te": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space-in-field-name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    "cl-not-a-number": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "two-different-cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bad-chunk-size": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nhello\r\n0\r\n\r\n",
    "line-too-long": b"GET /" + b"l" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "field-too-long": b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"f" * 9000 + b"\r\n\r\n",
    "too-many-fields": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-F%d: v\r\n" % i for i in range(150))
    + b"\r\n",
    "tls-client-hello": bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64,
    "garbage": b"\x00\x01\x02\x03 not http at all\r\n\r\n",
    "lf-in-request-line": b"GET /\nfoo HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",
}


class Malformed(Attack):
    """Each request of `MALFORMED` on its own connection, all at once: each must be answered
    4xx and its connection closed within `ANSWER_TIMEOUT`.

    That is `header_timeout` plus slack, not less: bytes that never make a request line (a TLS
    ClientHello) are answered 408 once the head times out, a 4xx and a close as well.
    """

    name: ClassVar[str] = "malformed"

    def round(self) -> None:
        self.begin_round(len(MALFORMED))
        socks: dict[str, socket.socket] = {}
        try:
            for case, raw in MALFORMED.items():
                socks[case] = sock = self.connect()
                sock.sendall(raw)
            begun = time.monotonic()
            for case, sock in socks.items():
                if self.stop.is_set():
                    return
                sock.settimeout(max(0.1, begun + ANSWER_TIMEOUT - time.monotonic()))
                self._judge(case, sock, begun)
        finally:
            for sock in socks.values():
                sock.close()

    def _judge(self, case: str, sock: socket.socket, begun: float) -> None:
        data = b""
        try:
            while more := sock.recv(65536):  # the answer, then the close
                data += more
        except TimeoutError:
            answer = status_of(data) if data else "no answer"
            self.outcome("not closed")
            self.unexpected(f"{case}: {answer} and no close within {ANSWER_TIMEOUT:.0f} s")
            return
        except OSError as exc:
            self.outcome("reset")
            self.unexpected(f"{case}: {type(exc).__name__}: {exc} (data before it: {data[:80]!r})")
            return
        what = status_of(data) if data else "closed without an answer"
        self.outcome(what, held=time.monotonic() - begun)
        if not what.startswith("answered 4"):
            self.unexpected(f"{case}: {what}, expected a 4xx and the close")


class ResetBursts(Attack):
    """`count` connections, each reset (SO_LINGER 0) at a different point of a request: at once,
    inside the head, right after a request for `/slow` (so the server writes to a reset
    socket), and halfway through a 200 KiB body."""

    name: ClassVar[str] = "reset_bursts"
    count: ClassVar[int] = 100
    BODY: ClassVar[int] = 200 * 1024
    STAGES: ClassVar[tuple[bytes, ...]] = (
        b"",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ",
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY + b"r" * (BODY // 2),
    )
    NAMES: ClassVar[tuple[str, ...]] = (
        "reset at once",
        "reset inside the head",
        "reset after a request",
        "reset inside the body",
    )

    def round(self) -> None:
        self.begin_round(self.count)
        for i in range(self.count):
            if self.stop.is_set():
                return
            sock = self.connect()
            stage = i % len(self.STAGES)
            try:
                sock.sendall(self.STAGES[stage])
            except OSError:
                self.outcome("ended by the server before the reset")
            else:
                self.outcome(self.NAMES[stage])
            reset(sock)


class NonReaders(Attack):
    """`count` connections with a small receive buffer each ask for two 1 MiB responses
    (pipelined) and never read: the server must close its end once the write has stalled for
    `timeout` (default 30 s)."""

    name: ClassVar[str] = "non_readers"
    count: ClassVar[int] = 10
    give_up: ClassVar[float] = IO_TIMEOUT + SERVER_SLACK
    REQUEST: ClassVar[bytes] = b"GET /big?kib=3072 HTTP/1.1\r\nHost: x\r\n\r\n"

    def round(self) -> None:
        self.begin_round(self.count)
        socks: dict[int, socket.socket] = {}
        try:
            for _ in range(self.count):
                sock = self.connect(rcvbuf=4096)
                sock.sendall(self.REQUEST * 2)
                socks[sock.getsockname()[1]] = sock
            self._watch(socks)
        finally:
            for sock in socks.values():
                reset(sock)  # unread data: the close is a reset anyway

    def _watch(self, socks: dict[int, socket.socket]) -> None:
        """Poll the server's end of each connection until it left ESTABLISHED (closed)."""
        begun = time.monotonic()
        waiting = set(socks)
        while waiting:
            if self.stop.is_set():
                for _ in waiting:
                    self.outcome("open at stop")
                return
            states = server_side_sockets(self.port, waiting)
            for port in list(waiting):
                state = states.get(port, (0, 0))[0]
                if state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
                    waiting.discard(port)
                    self.outcome("closed by the server", held=time.monotonic() - begun)
            if waiting and time.monotonic() - begun > self.give_up:
                for _ in waiting:
                    self.outcome(f"held by the server for {self.give_up:.0f} s")
                self.unexpected(
                    f"the server kept {len(waiting)} of {self.count} connections whose client "
                    f"reads nothing open for {self.give_up:.0f} s"
                )
                return
            self.stop.wait(0.5)
