"""The conformance suite's wire cases, run in-process through the parser and the request rules.

Owns: feeding each case of `conformance.conformance_cases.CASES` to a fresh `RequestParser`,
cut into reads in many ways, and judging what comes out against what the wire suite
(tests/conformance/test_wire_cases.py) expects of a real server: the status of a refusal,
or what the application sees of each request (the environ's request keys and fields, the
body), and whether the connection stays open. The parser applies `policy.check_head` to
every complete head (and maps llhttp's refusals through `policy`), so feeding it applies the
same rules the worker applies. It runs in seconds, on both builds: the one this process
imports, and pure Python in a child pytest with the pure copy first on its path.

The steps are the worker's (workers/loop.py, http/exchange.py): every read, of at most
RECV_SIZE bytes, goes to the connection's parser; a request whose head and body are complete
is served, in order (every body here is under small_body_size, so the worker reads it whole
before calling the app); a ProtocolError is answered with its status after the requests
completed before it, and the request it broke is never served; the app's environ is
`environ.build` of the request. Out of scope are the cases another route of the app than
echo answers: they judge the response, or what the worker does with a body the app left
unread, and the parser sees neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import wsgid
from conformance.conformance_cases import CASES, Case
from wsgid.http import environ
from wsgid.http.errors import ProtocolError
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request
from wsgid.workers.connection import RECV_SIZE

REPO = Path(__file__).resolve().parents[2]
# The wire suite's server runs with the default settings, whose limits these are.
LIMITS = Limits()
# Cases up to this size are also fed as two reads split at every byte.
SPLIT_MAX = 8192
# Reads a case too large for one byte per read is fed in, besides RECV_SIZE.
LARGE_READS = (1000, 4096)


def out_of_scope(case: Case) -> str | None:
    """Why `case` is left to the wire suite, or None if it runs here."""
    if any(exp.kind == "plain" for exp in case.replies):
        return (
            "answered by an app route other than echo: the case judges the response, or what "
            "the worker does with a body the app left unread, which the parser never sees"
        )
    return None


IN_PROCESS = [case for case in CASES if out_of_scope(case) is None]
PARAMS = [
    pytest.param(
        case, id=case.id, marks=pytest.mark.skip(reason=why) if (why := out_of_scope(case)) else ()
    )
    for case in CASES
]


@dataclass(frozen=True)
class Seen:
    """What the application sees of one request."""

    environ: dict[str, str]  # the CGI keys: connection, request line, fields
    body: bytes
    keep_alive: bool  # the client's wish (RFC 9112 §9.3)
    expect_continue: bool


@dataclass(frozen=True)
class Outcome:
    """What the worker does with a connection's bytes."""

    served: tuple[Seen, ...]  # the requests the app is called for, in order
    refused: int | None  # the status of the refusal that ends the connection
    waiting: bool  # the parser awaits the rest of a request (head or body)

    @property
    def closes(self) -> bool:
        return self.refused is not None or bool(self.served and not self.served[-1].keep_alive)


def seen(req: Request) -> Seen:
    base = environ.connection_base(
        server=("127.0.0.1", "8000"), peer=("127.0.0.1", "50000"), url_scheme="http",
        multithread=False,
    )  # fmt: skip
    env = environ.build(base, req, None)
    cgi = {key: value for key, value in env.items() if isinstance(value, str)}
    return Seen(cgi, bytes(req.body), req.keep_alive, req.expect_continue)


def outcome(reads: list[bytes]) -> Outcome:
    parser = RequestParser(LIMITS)
    refused = None
    try:
        for data in reads:
            parser.feed(data)
    except ProtocolError as exc:
        refused = exc.status
    served = []
    for req in parser.ready:
        if not req.body_complete:
            break
        served.append(seen(req))
    waiting = refused is None and (parser.in_head or len(served) < len(parser.ready))
    parser.close()
    return Outcome(tuple(served), refused, waiting)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def cuttings(case: Case) -> Iterator[tuple[str, list[bytes]]]:
    """The ways `case` is cut into reads, each with its name; the first is the worker's."""
    raw = case.raw
    yield f"in reads of {RECV_SIZE} bytes", pieces(raw, RECV_SIZE)
    if not case.bytewise:
        for size in LARGE_READS:
            yield f"in reads of {size} bytes", pieces(raw, size)
        return
    yield "one byte per read", pieces(raw, 1)
    if len(raw) <= SPLIT_MAX:
        for at in range(1, len(raw)):
            yield f"split at byte {at}", [raw[:at], raw[at:]]


def judge(case: Case, got: Outcome) -> list[str]:
    """What is wrong with `got` for `case` (nothing: [])."""
    problems = []
    if len(got.served) != case.called:
        problems.append(f"{len(got.served)} requests served, expected {case.called}")
    echoed = [exp for exp in case.replies if exp.kind == "echo"]
    for exp, request in zip(echoed, got.served, strict=False):  # a count apart is told above
        problems += exp.app_saw(request.environ, request.body)
    refusals = [exp.statuses() for exp in case.replies if exp.kind == "refused"]
    if refusals and got.refused not in refusals[-1]:
        problems.append(f"refused with {got.refused}, expected {refusals[-1]}")
    elif not refusals and got.refused is not None:
        problems.append(f"refused with {got.refused}, expected no refusal")
    if case.cut:
        if not got.waiting:
            problems.append("the truncated request is not awaited (the app would be called)")
    elif got.waiting:
        problems.append("the parser awaits more bytes, expected the case complete")
    elif case.end == "open" and got.closes:
        problems.append("the connection closes, expected it kept open")
    elif case.end == "closed" and not got.closes:
        problems.append("the connection stays open, expected it closed")
    return problems


@pytest.fixture(autouse=True)
def no_script_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH_INFO is the whole path, as for the wire suite's server."""
    monkeypatch.delenv("SCRIPT_NAME", raising=False)


@pytest.mark.parametrize("case", PARAMS)
def test_case(case: Case) -> None:
    (first, reads), *others = cuttings(case)
    got = outcome(reads)
    problems = judge(case, got)
    assert not problems, (
        f"{case.id} [RFC {case.rfc}] fed {first}\n"
        f"  bytes:    {case.raw[:600]!r}\n"
        f"  expected: {case.describe()}\n"
        f"  got:      {got}\n"
        f"  problems: {'; '.join(problems)}"
    )
    # RFC 9112 §2.2: a recipient must not depend on how the stream is cut into reads.
    for how, reads in others:
        assert outcome(reads) == got, f"{case.id}: fed {how}, not as when fed {first}"


def test_most_of_the_table_runs_here() -> None:
    # A filter gone wrong must not leave this module running nothing.
    assert len(IN_PROCESS) >= 300, f"only {len(IN_PROCESS)} of {len(CASES)} cases in scope"
    for case in IN_PROCESS:
        assert case.called == sum(exp.kind == "echo" for exp in case.replies), case.id


def test_the_pure_python_build_gives_the_same_outcomes(pure_wsgid: Path, tmp_path: Path) -> None:
    if wsgid.build() != "compiled":
        pytest.skip("this process runs the pure-Python build")
    env = {**os.environ, "PYTHONPATH": str(pure_wsgid)}
    build = subprocess.run(
        [sys.executable, "-c", "import wsgid; print(wsgid.build())"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert build.stdout.strip() == "pure Python"
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'pytest'}", f"{__file__}::test_case"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    skipped = len(CASES) - len(IN_PROCESS)
    summary = f"\n{len(IN_PROCESS)} passed, {skipped} skipped in "
    assert summary in child.stdout, child.stdout[-2000:]
