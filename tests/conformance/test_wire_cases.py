"""Every wire case of `conformance_cases.CASES`, against a real wsgid, for every worker kind.

Owns: running one case and judging it: the replies in order (status, headers, content, and
for the echo app the environ and body the application saw), the application call count (an
`/_calls` probe before and after: "app not called" is proven, not assumed), and the state of
the connection afterwards. Each case runs twice: the bytes sent whole, and one byte per
`send()` with TCP_NODELAY (RFC 9112 §2.2: a recipient must not depend on how the stream is
cut into segments); both must give the same result. `check_case` is also how
test_wire_cases_tls.py runs every case over HTTPS.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from conformance.conformance_cases import CASES, Case, Exp
from conformance.conformance_server import ConformanceServer
from conformance.conformance_wire import Malformed, Reply, Stalled, Wire

PROBE = b"GET /_probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
# Fields no response carries twice: one length frames the body (RFC 9110 §8.6), one Date
# (§6.6.1), and one Server and Content-Type, which wsgid or the app gives.
ONE_VALUE = ("Content-Length", "Date", "Server", "Content-Type")


def _check_reply(exp: Exp, reply: Reply) -> list[str]:
    problems = []
    if reply.status not in exp.statuses():
        problems.append(f"status {reply.status}, expected {exp.statuses()}")
    for name in ONE_VALUE:
        if len(reply.all(name)) > 1:
            problems.append(f"response header {name} sent {len(reply.all(name))} times")
    for name, value in exp.headers.items():
        got = reply.header(name)
        if value is None and got is not None:
            problems.append(f"response header {name}: {got!r} must be absent")
        elif value is not None and (got is None or got.lower() != value.lower()):
            problems.append(f"response header {name}: {got!r}, expected {value!r}")
    if exp.reply_body is not None and reply.body != exp.reply_body:
        problems.append(f"content {reply.body[:200]!r}, expected {exp.reply_body!r}")
    line = reply.head.split(b"\r\n", 1)[0]
    if exp.status_line is not None and line != exp.status_line:
        problems.append(f"status line {line!r}, expected {exp.status_line!r}")
    if exp.kind == "echo" and not problems:
        try:
            seen = reply.json()
        except (ValueError, AssertionError):
            return [f"not an echo reply: {reply.body[:200]!r}"]
        problems += exp.app_saw(seen["env"], seen["body"].encode("latin-1"))
    return problems


def run_case(server: ConformanceServer, case: Case, bytewise: bool) -> tuple[list[str], str]:
    """Run `case`; return (problems, what happened)."""
    before = server.calls()
    problems: list[str] = []
    got: list[str] = []
    probe_answered = False
    with server.wire() as w:
        w.send(case.raw if case.cut else case.raw + PROBE, bytewise and case.bytewise)
        if case.cut:
            w.shut_write()
            problems += _judge_cut(w, got)
        else:
            for exp in case.replies:
                try:
                    reply = w.read_reply(exp.method)
                    while reply.status == 100 and case.allow_continue:
                        reply = w.read_reply(exp.method)
                except (EOFError, Stalled, Malformed) as exc:
                    got.append(f"<{type(exc).__name__}: {exc}>")
                    problems.append(f"expected {exp.describe()}, got {type(exc).__name__}")
                    break
                got.append(reply.summary())
                problems += _check_reply(exp, reply)
            else:
                probe_answered = _judge_end(case, w, got, problems)
    after = server.calls()
    expected_calls = case.called + probe_answered
    if after - before != expected_calls:
        problems.append(f"the app was called {after - before} times, expected {expected_calls}")
    return problems, " | ".join(got)


def _judge_cut(w: Wire, got: list[str]) -> list[str]:
    try:
        reply = w.read_reply()
    except EOFError:
        got.append("<closed without a reply>")
        return []
    except (Stalled, Malformed) as exc:
        got.append(f"<{type(exc).__name__}: {exc}>")
        return [f"{type(exc).__name__} after a truncated request"]
    got.append(reply.summary())
    problems = []
    if reply.status < 400:
        problems.append(f"status {reply.status} for a truncated request")
    state = w.state_after()
    got.append(f"<then {state}>")
    if state != "eof":
        problems.append(f"connection {state} after a truncated request")
    return problems


def _judge_end(case: Case, w: Wire, got: list[str], problems: list[str]) -> bool:
    """Check what follows the case's replies; True if the probe was answered."""
    if case.end == "closed":
        state = w.state_after()
        got.append(f"<then {state}>")
        if state != "eof":
            problems.append(f"connection {state}, expected it closed")
        return False
    try:
        probe = w.read_reply()
    except EOFError:
        got.append("<then closed>")
        if case.end == "open":
            problems.append("connection closed, expected it kept open (probe not answered)")
        return False
    except (Stalled, Malformed) as exc:
        got.append(f"<probe: {type(exc).__name__}: {exc}>")
        problems.append(f"probe: {type(exc).__name__}")
        return False
    got.append(f"probe: {probe.summary()}")
    path = None
    if probe.status == 200:
        with contextlib.suppress(ValueError, KeyError):
            path = json.loads(probe.body)["env"]["PATH_INFO"]
    if path != "/_probe":
        problems.append("the reply after the case is not the probe's: framing went wrong")
    state = w.state_after()
    if state != "eof":
        problems.append(f"after the probe (Connection: close): {state}")
    return probe.status == 200


def check_case(server: ConformanceServer, case: Case, mode: str) -> None:
    """Run `case` sent `mode` ("whole" or "bytewise"); fail with what was sent, expected and
    got (skip a case too large to send one byte at a time)."""
    if mode == "bytewise" and not case.bytewise:
        pytest.skip("too large to send one byte per send()")
    problems, got = run_case(server, case, mode == "bytewise")
    assert not problems, (
        f"{case.id} [RFC {case.rfc}] sent {mode}{' over TLS' if server.tls else ''}\n"
        f"  bytes:    {case.raw[:600]!r}\n"
        f"  expected: {case.describe()}\n"
        f"  got:      {got}\n"
        f"  problems: {'; '.join(problems)}"
    )


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wire_case(server: ConformanceServer, case: Case, mode: str) -> None:
    check_case(server, case, mode)


def test_case_table_is_large_and_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 200
    assert all(c.rfc for c in CASES)


def test_worker_survived_every_case(server: ConformanceServer) -> None:
    """Runs last in this module (pytest keeps definition order): no worker died on the way."""
    server.assert_workers_unchanged()
