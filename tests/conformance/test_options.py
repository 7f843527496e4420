"""Settings that change wsgid's HTTP rules, each on its own server (tests/conformance only).

Owns: `header_timeout` (a request head must arrive in time, else 408 and close, without the
app), and the settings of those rules that may not exist yet: `limit_request_body` (413),
`header_map = "refuse"` (gunicorn's name and value for refusing header names with `_`
instead of dropping them) and the size up to which a body is read before the app runs.

A test of a setting the settings model does not have is marked `xfail(strict=True)`: it runs
and must fail; once the setting exists the mark falls away by itself and the test must pass.
Settings are passed as `WSGID_<NAME>` environment variables, the one spelling every setting
has.
"""

from __future__ import annotations

import select
import time
from pathlib import Path

import pytest

from conformance.conformance_server import ConformanceServer, running
from conformance.conformance_wire import Reply
from wsgid.settings import Settings

FIELDS = set(Settings.model_fields)
SMALL_BODY_FIELDS = sorted(f for f in FIELDS if "small_body" in f)


def pending(setting: str, present: bool | None = None) -> pytest.MarkDecorator:
    missing = setting not in FIELDS if present is None else not present
    return pytest.mark.xfail(missing, strict=True, reason=f"setting {setting} not implemented yet")


def exchange(srv: ConformanceServer, raw: bytes) -> tuple[Reply | None, str, int]:
    """Send `raw`; return (the first reply or None, connection state after it, app calls)."""
    before = srv.calls()
    with srv.wire() as w:
        w.send(raw)
        try:
            reply: Reply | None = w.read_reply()
        except EOFError:
            reply = None
        state = w.state_after(wait=1.0)
    return reply, state, srv.calls() - before


# ---------------------------------------------------------------------------- header_timeout


@pending("header_timeout")
def test_header_timeout_closes_a_trickling_head(kind: str, session_tmp: Path) -> None:
    """A client that keeps sending a byte now and then still has to finish its head in time."""
    timeout = 1.0
    with running(session_tmp, kind, env={"WSGID_HEADER_TIMEOUT": str(timeout)}) as srv:
        before = srv.calls()
        with srv.wire(timeout=10) as w:
            started = time.monotonic()
            w.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            answered = False
            while time.monotonic() - started < timeout + 5:
                # The slow client's pace; readable means the server answered or closed.
                readable, _, _ = select.select([w.sock], [], [], 0.2)
                if readable:
                    answered = True
                    break
                if not w.send(b"a"):
                    answered = True
                    break
            elapsed = time.monotonic() - started
            assert answered, f"the head was still being accepted after {elapsed:.1f}s"
            assert elapsed < timeout + 2.5, f"closed only after {elapsed:.1f}s"
            try:
                reply = w.read_reply()
            except EOFError:
                pass
            else:
                assert reply.status == 408, reply.summary()
                assert w.state_after() == "eof"
        assert srv.calls() == before


@pending("header_timeout")
def test_header_timeout_does_not_cut_a_prompt_client(kind: str, session_tmp: Path) -> None:
    with running(session_tmp, kind, env={"WSGID_HEADER_TIMEOUT": "1"}) as srv, srv.wire() as w:
        for i in range(3):
            w.send(b"GET /ok/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            assert w.read_reply().status == 200


def test_idle_connection_without_a_request_is_closed(kind: str, session_tmp: Path) -> None:
    """An idle client never ties up the server: before its first byte the keep-alive
    idle time applies."""
    with running(session_tmp, kind, env={"WSGID_KEEPALIVE": "1"}) as srv:
        with srv.wire(timeout=10) as w:
            started = time.monotonic()
            assert w.state_after(wait=8.0) == "eof"
            elapsed = time.monotonic() - started
        assert elapsed < 1 + 2.5, f"an idle connection stayed open {elapsed:.1f}s"


# ------------------------------------------------------------------------- limit_request_body


@pending("limit_request_body")
def test_limit_request_body_at_the_boundary(kind: str, session_tmp: Path) -> None:
    """An optional body limit (off by default); exactly the limit passes, one byte
    more is 413 before the app runs; chunked bodies count their content."""
    with running(session_tmp, kind, env={"WSGID_LIMIT_REQUEST_BODY": "100"}) as srv:
        post = b"POST / HTTP/1.1\r\nHost: x\r\n"
        reply, _, calls = exchange(srv, post + b"Content-Length: 100\r\n\r\n" + b"b" * 100)
        assert reply is not None and reply.status == 200 and calls == 1
        reply, state, calls = exchange(srv, post + b"Content-Length: 101\r\n\r\n" + b"b" * 101)
        assert reply is not None and reply.status == 413 and calls == 0 and state == "eof"
        te = post + b"Transfer-Encoding: chunked\r\n\r\n"
        reply, _, calls = exchange(srv, te + b"32\r\n" + b"c" * 50 + b"\r\n32\r\n" + b"c" * 50
                                   + b"\r\n0\r\n\r\n")  # fmt: skip
        assert reply is not None and reply.status == 200 and calls == 1
        reply, state, calls = exchange(srv, te + b"32\r\n" + b"c" * 50 + b"\r\n33\r\n" + b"c" * 51
                                       + b"\r\n0\r\n\r\n")  # fmt: skip
        assert reply is not None and reply.status == 413 and calls == 0 and state == "eof"


# ---------------------------------------------------------------------- header_map = refuse


@pending("header_map")
def test_header_map_refuse_rejects_underscore_names(kind: str, session_tmp: Path) -> None:
    """Names with `_` are dropped by default, with an option to refuse them (400)."""
    with running(session_tmp, kind, env={"WSGID_HEADER_MAP": "refuse"}) as srv:
        reply, state, calls = exchange(
            srv, b"GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1\r\n\r\n"
        )
        assert reply is not None and reply.status == 400 and calls == 0 and state == "eof"
        reply, _, calls = exchange(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1\r\n\r\n")
        assert reply is not None and reply.status == 200 and calls == 1


# ------------------------------------------------------------------ small-body prefetch size


@pending("small_body_size", present=bool(SMALL_BODY_FIELDS))
def test_small_body_size_is_configurable(kind: str, session_tmp: Path) -> None:
    """Bodies up to a configurable size are read before the app runs (a framing
    error in them is a 400 without the app); larger ones stream to the app."""
    name = SMALL_BODY_FIELDS[0] if SMALL_BODY_FIELDS else "small_body_size"
    with running(session_tmp, kind, env={f"WSGID_{name.upper()}": "1024"}) as srv:
        head = b"POST /_r/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        bad_tail = b"zz\r\nhello\r\n0\r\n\r\n"
        reply, state, calls = exchange(srv, head + b"3e8\r\n" + b"s" * 1000 + b"\r\n" + bad_tail)
        assert reply is not None and reply.status == 400 and calls == 0 and state == "eof"
        reply, state, calls = exchange(srv, head + b"fa0\r\n" + b"s" * 4000 + b"\r\n" + bad_tail)
        assert calls == 1, "a body over the configured size was not streamed to the app"
        assert (reply is None or not 200 <= reply.status < 300) and state == "eof"
