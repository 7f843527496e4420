"""Property-based fuzzing of the request parser over the wire (tests/conformance only).

Owns: the server's robustness property. Hypothesis takes valid requests (GET, POST with
Content-Length, chunked with extensions and a trailer, HEAD, HTTP/1.0 keep-alive, pipelined
pairs, Expect: 100-continue, OPTIONS *, absolute-form) and mutates them: it inserts CR, LF,
NUL, SP, HTAB, `_`, digits, hex letters and delimiters, replaces and deletes bytes, duplicates
header lines and truncates. Each mutant goes to a real wsgid on a fresh connection (sent in two
segments split at a random point, then half-closed), and then:
- no reply is a server failure: no 5xx other than 501 (not implemented: unknown method or
  transfer coding) and 505 (HTTP version), which are answers about the request;
- the server answers and closes within a bounded time (no hang);
- at the end, the worker processes are the same ones (no crash) and the error log holds no
  traceback.

In CI it runs WSGID_FUZZ_EXAMPLES examples per worker kind (default 20000, about half a
minute per kind). A longer run, e.g. a million examples:

    WSGID_FUZZ_EXAMPLES=1000000 .venv/bin/pytest tests/conformance/test_fuzz.py \\
        -p no:randomly -p no:timeout

Hypothesis keeps no example database (nothing is written to the working tree).
"""

from __future__ import annotations

import os
import re
import select
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance.conformance_server import ConformanceServer
from conformance.conformance_wire import Wire

EXAMPLES = int(os.environ.get("WSGID_FUZZ_EXAMPLES", "20000"))
READ_DEADLINE = 10.0  # seconds for the server to answer and close
BATCH = 25  # mutants per Hypothesis example, each on its own connection

BASES = [
    b"GET /fuzz/a?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: fuzz\r\n"
    b"Accept: text/html, */*;q=0.1\r\nCookie: a=1; b=2\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    b"POST /fuzz/form HTTP/1.1\r\nHost: example.org\r\nContent-Type: application/x-www-form-"
    b"urlencoded\r\nContent-Length: 11\r\n\r\nfield=value",
    b"POST /fuzz/chunked HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"HEAD /fuzz/head HTTP/1.1\r\nHost: example.org\r\n\r\n",
    b"GET /fuzz/ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /fuzz/1 HTTP/1.1\r\nHost: example.org\r\n\r\nPOST /fuzz/2 HTTP/1.1\r\n"
    b"Host: example.org\r\nContent-Length: 3\r\n\r\nabc",
    b"PUT /fuzz/expect HTTP/1.1\r\nHost: example.org\r\nExpect: 100-continue\r\n"
    b"Content-Length: 4\r\n\r\ndata",
    b"OPTIONS * HTTP/1.1\r\nHost: example.org\r\n\r\n",
    b"GET http://example.org/fuzz/abs HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
]
INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b"_", b"0", b"1", b"9", b"a", b"F",
           b":", b",", b";", b"-", b"\x7f", b"\xff", b"\x0b"]  # fmt: skip

# Replies from the server that are answers about the request, not failures of the server.
PROTOCOL_5XX = {501, 505}
# A status line can follow a response body directly (pipelining), so it is searched anywhere:
# "HTTP/1.x NNN " cannot come from the echo app's JSON, which escapes CR and LF and whose
# strings come from the (single-byte) mutations of the bases below.
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")

position = st.integers(min_value=0, max_value=1 << 12)
mutation = st.one_of(
    st.tuples(st.just("insert"), position, st.sampled_from(INSERTS)),
    st.tuples(st.just("replace"), position, st.sampled_from(INSERTS)),
    st.tuples(st.just("delete"), position, st.just(b"")),
    st.tuples(st.just("duplicate-line"), position, st.just(b"")),
    st.tuples(st.just("truncate"), position, st.just(b"")),
)


def mutate(base: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    data = base
    for op, pos, payload in mutations:
        if not data:
            break
        i = pos % (len(data) + 1)
        if op == "insert":
            data = data[:i] + payload + data[i:]
        elif op == "replace":
            data = data[:i] + payload + data[i + 1 :]
        elif op == "delete":
            data = data[:i] + data[i + 1 :]
        elif op == "truncate":
            data = data[:i]
        else:  # duplicate one line (a header line, usually)
            lines = data.split(b"\r\n")
            k = pos % len(lines)
            lines.insert(k, lines[k])
            data = b"\r\n".join(lines)
    return data


request = st.builds(
    lambda base, muts, split: (mutate(base, muts), split),
    st.sampled_from(BASES),
    st.lists(mutation, min_size=1, max_size=4),
    position,
)
# One Hypothesis example is a batch of mutants sent at once on parallel connections: the
# per-example cost of Hypothesis then is shared by the batch (and a failing batch shrinks to
# the one mutant that matters).
batch = st.lists(request, min_size=1, max_size=BATCH)


def exchange(port: int, items: list[tuple[bytes, int]]) -> list[bytes]:
    """Send each mutant on its own connection in two segments split at its split point, then
    half-close; return, per mutant, everything the server sent until its EOF."""
    wires = [Wire.connect(port, timeout=READ_DEADLINE) for _ in items]
    try:
        for w, (data, split) in zip(wires, items, strict=True):
            k = split % (len(data) + 1)
            if w.send(data[:k]) and w.send(data[k:]):
                w.shut_write()
        out = {id(w): bytearray() for w in wires}
        waiting = list(wires)
        deadline = time.monotonic() + READ_DEADLINE
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                hung = [items[wires.index(w)][0] for w in waiting]
                raise AssertionError(f"no end of the connection within {READ_DEADLINE}s: {hung!r}")
            readable, _, _ = select.select([w.sock for w in waiting], [], [], remaining)
            for w in [w for w in waiting if w.sock in readable]:
                try:
                    chunk = w.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    out[id(w)] += chunk
                else:
                    waiting.remove(w)
        return [bytes(out[id(w)]) for w in wires]
    finally:
        for w in wires:
            w.close()


def check(server: ConformanceServer, items: list[tuple[bytes, int]]) -> None:
    for (data, _), out in zip(items, exchange(server.port, items), strict=True):
        assert not out or out.startswith(b"HTTP/1."), f"not a response: {out[:100]!r} for {data!r}"
        for match in STATUS_LINE.finditer(out):
            status = int(match.group(1))
            assert status < 500 or status in PROTOCOL_5XX, (
                f"server failure {status} for {data!r}:\n{out[:2000]!r}"
            )


def test_mutated_requests_never_break_the_server(server: ConformanceServer) -> None:
    mark = server.log_mark()
    _, pid_before = server.app_state()

    @settings(
        max_examples=-(-EXAMPLES // BATCH),
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(items=batch)
    def one(items: list[tuple[bytes, int]]) -> None:
        check(server, items)

    one()
    server.assert_workers_unchanged()
    assert server.app_state()[1] == pid_before
    log = server.log_since(mark)
    assert "Traceback" not in log, f"tracebacks in the error log while fuzzing:\n{log[-5000:]}"
