"""Connection-level rules that a one-shot wire case cannot show (tests/conformance only).

Owns, for every worker kind: pipelining at scale (100 GETs in order), large bodies pipelined
to a client with a small receive window (whole, byte for byte, in order), each pipelined head
keeping its own fields, request bodies the app ignores (drained or the connection closed, never
parsed as a request), lingering close (RFC 9112 §9.6), the timing of `100 Continue` (RFC 9110
§10.1.1), `wsgiref.validate` staying silent for keep-alive, pipelined and chunked requests, the
error-log side of the response rules (one warning for a body on HEAD/204/304, an error for
hop-by-hop headers), small bodies read before the app versus framing errors found while
streaming, and slow clients that must not hold the application.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from conformance.conformance_app import big_body
from conformance.conformance_server import ConformanceServer
from conformance.conformance_wire import Reply, Wire

PROBE = b"GET /_probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
COMPLAINTS = ("WSGIWarning", "AssertionError", "Traceback", "Exception ignored")


def path_of(reply: Reply) -> str:
    return str(reply.json()["env"]["PATH_INFO"])


def chunk_encode(data: bytes, size: int = 8192) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
           for i in range(0, len(data), size)]  # fmt: skip
    return b"".join(out)


class Sender:
    """Send bytes from a thread (a large upload must not block the reading side)."""

    def __init__(self, wire: Wire, data: bytes) -> None:
        self.ok = True
        self._thread = threading.Thread(target=self._run, args=(wire, data), daemon=True)
        self._thread.start()

    def _run(self, wire: Wire, data: bytes) -> None:
        try:
            self.ok = wire.send(data)
        except OSError:
            self.ok = False

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the upload did not finish within 30s"


# ------------------------------------------------------------------- keep-alive, pipelining


def test_100_pipelined_gets_come_back_in_order(server: ConformanceServer) -> None:
    """RFC 9112 §9.3.2: responses in the order the requests were received."""
    n = 100
    requests = b"".join(b"GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
    before = server.calls()
    with server.wire(timeout=10) as w:
        w.send(requests)
        paths = [path_of(w.read_reply()) for _ in range(n)]
        assert paths == [f"/seq/{i}" for i in range(n)]
        w.send(PROBE)
        assert path_of(w.read_reply()) == "/_probe"
        assert w.state_after() == "eof"
    assert server.calls() - before == n + 1


def test_sequential_requests_reuse_one_connection(server: ConformanceServer) -> None:
    """RFC 9112 §9.3: HTTP/1.1 connections persist unless `close` is signalled."""
    with server.wire() as w:
        for i in range(20):
            w.send(b"GET /again/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            reply = w.read_reply()
            assert reply.header("Connection") is None, reply.headers
            assert path_of(reply) == f"/again/{i}"
        assert w.state_after(wait=0.2) == "open"


def test_pipelined_requests_before_a_half_close_are_all_answered(
    server: ConformanceServer,
) -> None:
    """RFC 9112 §9.6: a client that half-closes after its last request still gets every
    response; complete requests already received are not dropped."""
    with server.wire() as w:
        w.send(b"GET /hc/1 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /hc/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
               b"GET /hc/3 HTTP/1.1\r\nHost: x\r\n\r\n")  # fmt: skip
        w.shut_write()
        paths = []
        for _ in range(3):
            try:
                paths.append(path_of(w.read_reply()))
            except EOFError:
                break
        assert paths == ["/hc/1", "/hc/2", "/hc/3"]
        assert w.state_after() == "eof"


# Bodies on both sides of the size from which one goes after its head by a vectored send,
# not copied onto it (workers/connection.py, SEPARATE_FROM = 32 KiB), in each way an app
# gives one: a list, a generator (with and without a Content-Length: chunked), write().
# The first ones more than the kernel's send buffer takes at once (it starts at about 2.5 MB
# on loopback), so that each send after them finds it partly full and takes part of a body.
LARGE_BODIES = (
    (3 << 20, "mode=list"),
    (1_500_000, "mode=list"),
    (1_400_000, "mode=gen&cl"),
    (1_300_000, "mode=list"),
    (1 << 20, "mode=list"),
    ((32 << 10) - 1, "mode=list"),
    (32 << 10, "mode=list"),
    (300_000, "mode=gen&cl"),
    (300_000, "mode=gen"),
    (200_000, "mode=write&cl"),
    (100, "mode=list"),
    (40_000, "mode=list&head"),
)


def check_large_bodies(server: ConformanceServer) -> None:
    """Pipeline `LARGE_BODIES` to a client whose receive window (64 KiB, set after the
    handshake: smaller makes loopback TCP crawl) makes the worker's sends partial at any
    offset: each body arrives whole, byte for byte, in order."""
    requests = b"".join(
        b"%s /_r/big?size=%d&%s HTTP/1.1\r\nHost: x\r\n\r\n"
        % (b"HEAD" if query.endswith("head") else b"GET", size, query.encode())
        for size, query in LARGE_BODIES
    )
    with server.wire(timeout=20) as w:
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        w.send(requests)
        for size, query in LARGE_BODIES:
            head = query.endswith("head")
            reply = w.read_reply("HEAD" if head else "GET")
            assert reply.status == 200, (query, reply.summary())
            assert reply.body == (b"" if head else big_body(size)), (size, query, len(reply.body))
        w.send(PROBE)
        assert path_of(w.read_reply()) == "/_probe"


def test_large_bodies_reach_a_slow_pipelining_client_whole_and_in_order(
    server: ConformanceServer,
) -> None:
    check_large_bodies(server)


def fields_of(reply: Reply) -> dict[str, str]:
    """The request's fields as the app saw them."""
    env = reply.json()["env"]
    return {k: v for k, v in env.items() if k.startswith("HTTP_")}


def test_pipelined_requests_with_the_same_request_line_keep_their_own_fields(
    server: ConformanceServer,
) -> None:
    """Each head's fields are its own when the next head starts in the same read with the
    same request line (an earlier parser looked the line up from the read's start and gave
    the second request the first one's fields)."""
    with server.wire() as w:
        w.send(b"GET /same HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /same HTTP/1.1\r\nHost: b\r\nX-Second: 1\r\n\r\n")  # fmt: skip
        first, second = fields_of(w.read_reply()), fields_of(w.read_reply())
    assert first == {"HTTP_HOST": "a"}, first
    assert second == {"HTTP_HOST": "b", "HTTP_X_SECOND": "1"}, second


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_request_line_inside_a_body_never_lends_its_fields_to_the_next_request(
    server: ConformanceServer, framing: str
) -> None:
    """A body that contains a whole request head (`X-Admin: yes`), followed in the same read
    by a real request with the same request line: the real request gets only its own fields."""
    inner = b"GET /x HTTP/1.1\r\nHost: inner\r\nX-Admin: yes\r\n\r\n"
    if framing == "length":
        post = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (
            len(inner), inner)  # fmt: skip
    else:
        post = (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunk_encode(inner) + b"0\r\n\r\n")  # fmt: skip
    with server.wire() as w:
        w.send(post + b"GET /x HTTP/1.1\r\nHost: real\r\n\r\n")
        uploaded = w.read_reply().json()
        real = w.read_reply()
    assert uploaded["body"] == inner.decode("latin-1")
    assert path_of(real) == "/x"
    assert fields_of(real) == {"HTTP_HOST": "real"}, fields_of(real)


@pytest.mark.parametrize(
    ("framing", "size"),
    [("length", 10), ("length", 100_000), ("length", 3_000_000), ("chunked", 10),
     ("chunked", 100_000), ("chunked", 3_000_000)],
)  # fmt: skip
def test_ignored_body_never_leaks_into_the_next_request(
    server: ConformanceServer, framing: str, size: int
) -> None:
    """RFC 9112 §6.3/§9.3: the unread rest of a body is drained or the connection closed;
    its bytes (here: copies of a request) are never parsed as requests."""
    filler = (SMUGGLED * (size // len(SMUGGLED) + 1))[:size]
    if framing == "length":
        head = b"POST /_r/ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
        body = filler
    else:
        head = b"POST /_r/ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = chunk_encode(filler) + b"0\r\n\r\n"
    after = b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    before = server.calls()
    with server.wire(timeout=10) as w:
        sender = Sender(w, head + body + after)
        first = w.read_reply()
        assert (first.status, first.body) == (200, b"ignored")
        try:
            second: Reply | None = w.read_reply()
        except EOFError:
            second = None  # closed instead of drained: allowed
        sender.join()
        if second is not None:
            assert second.status == 200 and path_of(second) == "/next", second.summary()
            assert w.state_after() == "eof"
    calls = server.calls() - before
    assert calls == 1 + (second is not None), "a request was read out of an ignored body"


def test_a_request_line_without_a_version_is_refused_as_soon_as_it_ends(
    server: ConformanceServer,
) -> None:
    """An HTTP/0.9 client sends `GET /` and one CRLF, then waits: the 400 comes at once, not
    after header_timeout (30 s here) for a blank line it will never send."""
    with server.wire(timeout=5) as w:
        assert w.send(b"GET /\r\n")
        reply = w.read_reply()
        assert reply.status == 400
        assert w.state_after() == "eof"


# ------------------------------------------------------------------------ lingering close


def test_rejection_reaches_a_client_still_sending(server: ConformanceServer) -> None:
    """RFC 9112 §9.6: close with unread input by half-closing and lingering, so the client
    reads the response instead of a reset."""
    with server.wire(timeout=10) as w:
        assert w.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n" + b"x" * (2 << 20))
        reply = w.read_reply()
        assert reply.status == 400
        assert w.state_after() == "eof"


def test_response_reaches_a_client_whose_body_was_not_read(server: ConformanceServer) -> None:
    """RFC 9112 §9.6: the app answers without reading a large body; the client, which sends
    everything before reading, still gets the whole response."""
    size = 4 << 20
    with server.wire(timeout=10) as w:
        w.send(b"POST /_r/ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Connection: close\r\n\r\n" % size + b"y" * size)  # fmt: skip
        reply = w.read_reply()
        assert (reply.status, reply.body) == (200, b"ignored")
        assert w.state_after() == "eof"
        assert not w.reset, "the connection was reset (RST) instead of closed"


# ------------------------------------------------------------------------------------ Upgrade


def test_upgrade_h2c_post_streams_a_large_body_to_the_app(server: ConformanceServer) -> None:
    """`curl --http2 -d @file http://...` and Java's HttpClient send `Upgrade: h2c` on a POST
    with its body: the body, past small_body_size here, streams to the app whole (httptools
    makes llhttp skip the content of a request that asks to upgrade; it used to reach the app
    empty), then the connection closes."""
    size = 200_000
    with server.wire(timeout=10) as w:
        w.send(b"POST /_r/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
               b"Content-Length: %d\r\n\r\n" % size)  # fmt: skip
        for _ in range(size // 20_000):
            w.send(b"z" * 20_000)
        reply = w.read_reply()
        assert reply.status == 200 and reply.json() == {"size": size}, reply.summary()
        assert w.state_after() == "eof"


# ----------------------------------------------------------------------------- 100 Continue


def test_100_continue_sent_when_the_app_reads(server: ConformanceServer) -> None:
    """RFC 9110 §10.1.1: the client waits for 100 before sending the content."""
    with server.wire() as w:
        w.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = w.read_reply()
        assert interim.status == 100, interim.summary()
        w.send(b"hello")
        final = w.read_reply()
        assert final.status == 200 and final.json()["body"] == "hello"
        w.send(PROBE)
        assert path_of(w.read_reply()) == "/_probe"


def test_100_continue_for_a_chunked_body(server: ConformanceServer) -> None:
    with server.wire() as w:
        w.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-CONTINUE\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        assert w.read_reply().status == 100
        w.send(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        final = w.read_reply()
        assert final.status == 200 and final.json()["body"] == "abcde"


def test_100_continue_at_once_for_a_small_body_read_before_the_app(
    server: ConformanceServer,
) -> None:
    """A body up to small_body_size is read before the app is called, under the body
    deadline; a client awaiting 100 is asked for it at once (PEP 3333's first way, as
    gunicorn does), so that a silent one holds no worker (tests/hardening/test_body_deadline.py)."""
    before = server.calls()
    with server.wire() as w:
        w.send(b"POST /_r/ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(SMUGGLED))  # fmt: skip
        assert w.read_reply().status == 100
        assert server.calls() == before, "the app was called before its small body came"
        w.send(SMUGGLED + PROBE)
        reply = w.read_reply()
        assert (reply.status, reply.body) == (200, b"ignored")
        assert path_of(w.read_reply()) == "/_probe"  # the body was the body, not a request
    assert server.calls() - before == 2


def test_100_continue_never_sent_when_the_app_answers_a_large_body_without_reading(
    server: ConformanceServer,
) -> None:
    """RFC 9110 §10.1.1: a larger body is asked for only when the app reads it: no 100 if the
    final response comes first; the body sent afterwards is then read and discarded or the
    connection closed, never parsed as a request."""
    large = SMUGGLED.rjust(65537, b"x")  # past small_body_size, ending in a request's bytes
    before = server.calls()
    with server.wire() as w:
        w.send(b"POST /_r/ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(large))  # fmt: skip
        reply = w.read_reply()
        assert (reply.status, reply.body) == (200, b"ignored")
        w.send(large + PROBE)
        try:
            probe: Reply | None = w.read_reply()
        except EOFError:
            probe = None
        if probe is not None:
            assert path_of(probe) == "/_probe", probe.summary()
    assert server.calls() - before == 1 + (probe is not None)


@pytest.mark.parametrize("via", ["iterable", "write"])
def test_100_continue_comes_before_a_response_the_app_started_before_reading(
    server: ConformanceServer, via: str
) -> None:
    """RFC 9110 §15.2: an interim response precedes the final one. An app that starts its
    response and then reads a large body (a streaming echo or proxy) gets `100 Continue` sent
    before its head, never inside its body, where curl (which awaits it for bodies past
    1 MiB) read it as broken chunked framing."""
    body = b"y" * 100_000  # past small_body_size: read by the app, not before it
    with server.wire() as w:
        w.send(b"POST /_r/started?via=%s HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % (via.encode(), len(body)))  # fmt: skip
        interim = w.read_reply()
        assert interim.status == 100, interim.summary()
        w.send(body)
        final = w.read_reply()
        assert final.status == 200, final.summary()
        assert final.body == b"started;" + body
        w.send(PROBE)
        assert path_of(w.read_reply()) == "/_probe"


def test_expect_ignored_on_http10(server: ConformanceServer) -> None:
    """RFC 9110 §10.1.1: HTTP/1.0 clients do not wait for 100; none is sent."""
    with server.wire() as w:
        w.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert w.state_after(wait=0.5) == "open", "a response arrived before the body was sent"
        w.send(b"hello")
        reply = w.read_reply()
        assert reply.status == 200 and reply.json()["body"] == "hello"


# -------------------------------------------------------------------------- wsgiref.validate


@pytest.fixture
def validator_log(server: ConformanceServer) -> Iterator[None]:
    mark = server.log_mark()
    yield
    # One more exchange, so anything the validator reports when the previous responses'
    # iterables are released is in the log before it is read.
    with server.wire() as w:
        w.send(PROBE)
        w.read_reply()
    text = server.log_since(mark)
    found = [word for word in COMPLAINTS if word in text]
    assert not found, f"wsgiref.validate complained ({found}):\n{text}"


@pytest.mark.usefixtures("validator_log")
def test_validator_silent_on_keep_alive(server: ConformanceServer) -> None:
    with server.wire() as w:
        for i in range(3):
            w.send(b"GET /_v/ka/%d?q=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, i))
            reply = w.read_reply()
            assert reply.status == 200, reply.summary()
        w.send(b"POST /_v/ka/post HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 5\r\n\r\nhello")  # fmt: skip
        reply = w.read_reply()
        assert reply.status == 200 and reply.json()["body"] == "hello", reply.summary()


@pytest.mark.usefixtures("validator_log")
def test_validator_silent_on_pipelined(server: ConformanceServer) -> None:
    with server.wire() as w:
        w.send(
            b"GET /_v/p/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /_v/p/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"HEAD /_v/p/3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /_v/p/4 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        replies = [w.read_reply(m) for m in ("GET", "POST", "HEAD", "GET")]
        assert [r.status for r in replies] == [200] * 4, [r.summary() for r in replies]
        assert path_of(replies[3]) == "/_v/p/4"


@pytest.mark.usefixtures("validator_log")
def test_validator_silent_on_chunked(server: ConformanceServer) -> None:
    data = bytes(range(256)) * 300
    with server.wire() as w:
        w.send(b"POST /_v/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + chunk_encode(data, 1000) + b"0\r\nX-Trailer: 1\r\n\r\n")  # fmt: skip
        reply = w.read_reply()
        assert reply.status == 200, reply.summary()
        assert reply.json()["body"].encode("latin-1") == data


# ------------------------------------------------------------- response rules, error-log side


@pytest.mark.parametrize(
    ("method", "query"),
    [("HEAD", b"body=hello+world&mode=gen"), ("GET", b"code=204&body=hello+world&mode=gen"),
     ("GET", b"code=304&body=hello+world&mode=gen")],
    ids=["HEAD", "204", "304"],
)  # fmt: skip
def test_body_for_a_bodiless_response_dropped_with_one_warning(
    server: ConformanceServer, method: str, query: bytes
) -> None:
    """RFC 9110 §6.4.1: no content on the wire, one warning in the error log."""
    mark = server.log_mark()
    with server.wire() as w:
        w.send(method.encode() + b" /_r/resp?" + query + b" HTTP/1.1\r\nHost: x\r\n\r\n" + PROBE)
        reply = w.read_reply(method)
        assert reply.header("Transfer-Encoding") is None
        assert path_of(w.read_reply()) == "/_probe", "content was sent after the head"
    text = server.wait_log(mark, "[warning]", timeout=2.0)
    warnings = [line for line in text.splitlines() if "[warning]" in line]
    assert len(warnings) == 1, f"expected one warning, got:\n{text}"


def test_hop_by_hop_header_from_app_is_500_and_logged(server: ConformanceServer) -> None:
    """PEP 3333 / RFC 9110 §7.6.1: an application error, answered 500 and logged."""
    mark = server.log_mark()
    with server.wire() as w:
        w.send(b"GET /_r/resp?hdr=Transfer-Encoding&val=chunked HTTP/1.1\r\nHost: x\r\n\r\n")
        assert w.read_reply().status == 500
    text = server.wait_log(mark, "Transfer-Encoding")
    assert "[error]" in text and "Transfer-Encoding" in text, text


@pytest.mark.parametrize(
    ("mode", "said"),
    [("bytes", "returned bytes, not an iterable of bytes"),
     ("str", "returned str, not an iterable of bytes"),
     ("none", "returned None, not an iterable of bytes")],
)  # fmt: skip
def test_an_app_returning_its_body_instead_of_an_iterable_is_500_and_the_log_says_so(
    server: ConformanceServer, mode: str, said: str
) -> None:
    """PEP 3333: the app returns an iterable of bytes. Returning the body itself (or None) is
    a common mistake; the log must say that, not what iterating bytes gives ("yielded int")."""
    mark = server.log_mark()
    with server.wire() as w:
        w.send(b"GET /_r/resp?body=hello&mode=%s HTTP/1.1\r\nHost: x\r\n\r\n" % mode.encode())
        assert w.read_reply().status == 500
        w.send(PROBE)
        assert path_of(w.read_reply()) == "/_probe"
    text = server.wait_log(mark, "TypeError")  # there either way: no wait while it fails
    assert "[error]" in text and said in text, text


@pytest.mark.parametrize("mode", ["list", "gen"])
def test_a_status_and_headers_given_as_str_subclasses_are_served_as_their_text(
    server: ConformanceServer, mode: str
) -> None:
    """Django and Werkzeug hand on a header value that is a str subclass as it is (Django's
    SafeString from format_html, Jinja's Markup, a StrEnum member): it is a native string to
    PEP 3333 and gunicorn serves it; wsgid answered 500."""
    mark = server.log_mark()
    with server.wire() as w:
        w.send(b"GET /_r/resp?status=201%%20Made&hdr=X-Safe&val=yes&body=x&sub&mode=%s "
               b"HTTP/1.1\r\nHost: x\r\n\r\n" % mode.encode())  # fmt: skip
        reply = w.read_reply()
    assert (reply.status, reply.reason, reply.header("X-Safe")) == (201, "Made", "yes"), (
        server.log_since(mark)
    )
    assert (reply.header("Content-Type"), reply.body) == ("text/plain", b"x")


@pytest.mark.parametrize("body", [b"", b"one\ntwo\nthree"], ids=["no-body", "body"])
def test_wsgi_input_takes_none_as_no_hint(server: ConformanceServer, body: bytes) -> None:
    """io's readlines(None) and read1(None) mean "no limit" (gunicorn's readlines takes None
    too); wrappers that pass their argument on (wsgiref.validate's) call them so. wsgid's
    stream answered 500 (a TypeError; on the compiled build, for a request without a body
    too)."""
    with server.wire() as w:
        w.send(b"POST /_r/lines HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))  # fmt: skip
        reply = w.read_reply()
    assert reply.status == 200, reply.summary()
    want = body.decode().splitlines(keepends=True)
    assert reply.json() == {"lines": want, "rest": ""}


def test_environ_names_the_server_software(server: ConformanceServer) -> None:
    """RFC 3875 §4.1.17 (the CGI variables PEP 3333 keeps): SERVER_SOFTWARE names the server,
    as gunicorn's environ does ("gunicorn/23.0.0"); simple-websocket looks at it."""
    with server.wire() as w:
        w.send(b"GET /sw HTTP/1.1\r\nHost: x\r\n\r\n")
        env = w.read_reply().json()["env"]
    assert env.get("SERVER_SOFTWARE") == "wsgid", env


# ------------------------------------------------------------------ small bodies, streaming


def test_small_chunked_body_with_bad_framing_rejected_before_the_app(
    server: ConformanceServer,
) -> None:
    """Bodies up to 64 KiB are read before the app runs, so bad framing is a 400."""
    body = chunk_encode(b"s" * 60_000) + b"zz\r\nhello\r\n0\r\n\r\n"
    before = server.calls()
    with server.wire() as w:
        w.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        reply = w.read_reply()
        assert reply.status == 400
        assert w.state_after() == "eof"
    assert server.calls() == before, "the app ran for a body with bad framing"


@pytest.mark.parametrize("route", [b"/_r/stream", b"/_r/swallow"])
def test_bad_framing_found_while_streaming_never_gets_a_2xx(
    server: ConformanceServer, route: bytes
) -> None:
    """A framing error in a large streamed body makes wsgi.input raise, is logged,
    and the connection is closed without a 2xx (even if the app swallows the error)."""
    mark = server.log_mark()
    body = chunk_encode(b"L" * 300_000) + b"zz\r\nhello\r\n0\r\n\r\n"
    with server.wire(timeout=10) as w:
        sender = Sender(w, b"POST " + route + b" HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n" + body)  # fmt: skip
        try:
            reply: Reply | None = w.read_reply()
        except EOFError:
            reply = None
        sender.join()
        assert reply is None or not 200 <= reply.status < 300, reply.summary()
        assert w.state_after() == "eof"
    text = server.wait_log(mark, "chunk")
    assert text.strip(), "the framing error was not logged"


def test_slow_clients_do_not_hold_the_app(server: ConformanceServer) -> None:
    """A half-sent head and a half-sent small body wait outside the application."""
    with server.wire() as slow_head, server.wire() as slow_body, server.wire(timeout=2) as fast:
        slow_head.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Part")
        slow_body.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        fast.send(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert path_of(fast.read_reply()) == "/fast"
        slow_body.send(b"defghij")
        reply = slow_body.read_reply()
        assert json.loads(reply.body)["body"] == "abcdefghij"
