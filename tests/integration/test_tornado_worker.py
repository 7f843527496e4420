"""The tornado worker kind (`-k tornado`): what is its own, apart from the suites every kind
runs (the conformance, hardening, TLS, PROXY protocol and metrics suites run over every
kind of `wsgid.workers.KINDS`, this one with a WSGI app).

With `tornado_app` (tests/apps): a `tornado.web.Application` served on the worker's IOLoop
through wsgid's own HTTP layer (GET, a POST body, a streamed response in chunks with
`flush()`, several requests on one keep-alive connection and pipelined, the Application's
own 404, the access log, HTTPS), a `WebSocketHandler` echo that takes the connection over
(`detach`), also over HTTPS, a streamed request body after `100 Continue`, a slow reader
of a large response that holds its handler and nothing else, its async handlers waiting side
by side (200 requests of 1 s in one worker), `on_connection_close` when the client of a
waiting handler leaves (also over HTTPS) and a request it sends meanwhile answered after
the first, `get_ssl_certificate()` with a client certificate and `connection.stream`,
`request_timeout` (and a long poll outliving `timeout` when it is off), a graceful stop
that lets it finish, `max_requests`; a plain WSGI app on the same kind runs in a pool
thread, never the loop's, and work it hands the IOLoop runs at once; `wsgid check -k
tornado` accepts both apps, and another kind refuses the Application with the reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.client import RawConnection, poll
from support.hooks import post_request_statuses
from support.server import WorkDir, WsgidServer
from support.tls import https_get, make_certs
from support.websocket import Client, echo_then_close
from wsgid.exitcodes import ExitCode

APP = "tornado_app:app"
WSGI_APP = "tornado_app:wsgi"


def test_tornado_application_answers_get_post_and_its_own_404(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    answer = server.get("/")
    assert answer.status == 200, server.errlog()
    seen = json.loads(answer.body)
    # on the loop's thread, tornado's; through wsgid's HTTP layer (its Server header)
    assert seen["main"] is True, seen
    assert (seen["remote_ip"], seen["protocol"]) == ("127.0.0.1", "http"), seen
    assert answer.header("Server") == "wsgid"
    assert answer.header("Content-Length") == str(len(answer.body))
    body = bytes(range(256)) * 1024  # 256 KiB: more than small_body_size, read as it arrives
    echoed = server.request("POST", "/echo", body=body)
    assert echoed.status == 200, server.errlog()
    assert (echoed.header("X-Length"), echoed.body) == (str(len(body)), body)
    missing = server.get("/no-such-route")
    assert missing.status == 404 and b"404" in missing.body
    assert server.stop() == 0, server.errlog()


def test_tornado_application_streams_in_chunks(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    with server.raw() as conn:
        answer = conn.request(b"GET /stream?n=5 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 200, server.errlog()
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.headers["Content-Length"] is None
    assert answer.body == b"".join(b"chunk-%d\n" % i for i in range(5))
    assert server.stop() == 0, server.errlog()


def test_tornado_application_whole_bodies_of_any_size_arrive_whole_and_in_order(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """A body given whole to `finish()` goes after its head as a second piece, sent by one
    vectored send from 32 KiB on (workers/connection.py); pipelined past what the kernel's
    send buffer takes at once, so that sends stop inside bodies."""
    server = wsgid(APP, "-k", "tornado", workers=1)
    sizes = (3 << 20, 40_000, 100, 1 << 20, 32 << 10)
    with server.raw() as conn:
        conn.send(b"".join(b"GET /whole?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in sizes))
        for size in sizes:
            answer = conn.read_response()
            assert answer.status == 200, server.errlog()
            # What the app's `whole_body` gives.
            assert answer.body == random.Random(size).randbytes(size), (size, len(answer.body))
    assert server.stop() == 0, server.errlog()


def test_tornado_application_keeps_the_connection_alive_and_answers_pipelined_requests(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    with server.raw() as conn:
        for _ in range(5):  # one after the other on one connection
            answer = conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.status == 200 and answer.headers["Connection"] is None
        conn.send(
            b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /sleep?s=0.1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answers = [conn.read_response() for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 404, 200], answers
        assert answers[0].body == b"chunk-0\nchunk-1\n"
        assert answers[1].body == b"hello"
        assert json.loads(answers[3].body)["slept"] == 0.1
        assert answers[3].headers["Connection"] == "close"
        assert conn.fp.read() == b""  # and closed after it
    assert server.stop() == 0, server.errlog()


def test_tornado_application_requests_are_in_the_access_log(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", "--access-logfile", "-", workers=1)
    assert server.get("/?logged-request=tornado-ok").status == 200
    assert server.get("/no-such?logged-request=tornado-404").status == 404
    assert server.stop(signal.SIGTERM) == 0, server.errlog()
    lines = [line for line in server.outlog().splitlines() if "logged-request" in line]
    assert len(lines) == 2, server.outlog()
    assert "tornado-ok" in lines[0] and " 200 " in lines[0], lines
    assert "tornado-404" in lines[1] and " 404 " in lines[1], lines


def test_tornado_application_streams_a_request_body_after_100_continue(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    body = bytes(range(256)) * 4096  # 1 MiB
    with server.raw() as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert conn.fp.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert conn.fp.readline() == b"\r\n"
        conn.send(body)
        answer = conn.read_response()
        assert answer.status == 200, server.errlog()
        seen = json.loads(answer.body)
        assert seen["bytes"] == len(body) and seen["pieces"] > 1, seen
        assert seen["sha256"] == hashlib.sha256(body).hexdigest()
        # and the connection serves on
        assert conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    assert server.stop() == 0, server.errlog()


def test_tornado_application_slow_reader_holds_its_handler_not_the_worker(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    with server.connect(timeout=30) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(b"GET /big?mb=32 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = slow.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        # The client reads nothing more: the worker goes on serving others meanwhile.
        for _ in range(3):
            started = time.monotonic()
            assert server.get("/", timeout=10).status == 200
            assert time.monotonic() - started < 2
        received = len(first)
        while True:  # then all of it arrives
            data = slow.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if received >= 32 << 20:
                break
        assert received >= 32 << 20
    assert server.stop() == 0, server.errlog()


def https_server(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, *args: str
) -> tuple[WsgidServer, ssl.SSLContext]:
    """`tornado_app` on `-k tornado` over HTTPS (not waited for), and a client context."""
    certs = make_certs(workdir.root / "certs")
    tls = ["--certfile", str(certs.server), "--keyfile", str(certs.server_key)]
    server = wsgid(APP, "-k", "tornado", *tls, *args, workers=1, start=False)
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.check_hostname = False
    return server, context


def test_tornado_application_sees_no_forwarded_header_of_an_untrusted_peer(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """As a WSGI app's environ loses them: a handler reading X-Forwarded-Proto itself saw a
    client's https (the request's `protocol` was right). A trusted peer's stays."""
    forged = {"X-Forwarded-Proto": "https"}
    untrusted = wsgid(APP, "-k", "tornado", "--forwarded-allow-ips", "10.9.9.9", workers=1)
    seen = json.loads(untrusted.get("/", headers=forged).body)
    assert (seen["x_forwarded_proto"], seen["protocol"]) == (None, "http"), seen
    assert untrusted.stop() == 0, untrusted.errlog()
    trusted = wsgid(APP, "-k", "tornado", "--forwarded-allow-ips", "127.0.0.1", workers=1)
    seen = json.loads(trusted.get("/", headers=forged).body)
    assert (seen["x_forwarded_proto"], seen["protocol"]) == ("https", "https"), seen
    assert trusted.stop() == 0, trusted.errlog()


def test_tornado_application_over_https(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, context = https_server(wsgid, workdir)

    def get() -> dict[str, object] | None:
        try:
            head, body = https_get(server.port, context)
        except OSError:
            return None
        assert head.startswith(b"HTTP/1.1 200 "), head
        seen: dict[str, object] = json.loads(body)
        return seen

    seen = poll(get, timeout=20, what="an HTTPS answer")
    assert seen["protocol"] == "https", seen
    assert server.stop() == 0, server.errlog()


# 6 MB: more than the socket takes at once (over TLS, the stream keeps the rest).
WS_TEXTS = ("hello", "wsgid " * 1_000_000)


def assert_switch_head(client: Client) -> None:
    """The handler's 101 head, its Upgrade and Connection included."""
    head = client.received.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 101 switching protocols\r\n"), head
    assert b"\r\nupgrade: websocket" in head and b"\r\nconnection: upgrade" in head, head


def test_tornado_application_websocket_echo_takes_the_connection_over(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """A `tornado.websocket.WebSocketHandler` gets the connection (`detach`): its 101 head,
    Upgrade and Connection included, then its frames; nothing of wsgid's after its close."""
    server = wsgid(APP, "-k", "tornado", "--access-logfile", "-", workers=1)
    client = Client(server.port)
    echo_then_close(client, "/ws", WS_TEXTS, lambda: bool(json.loads(server.get("/").body)))
    assert_switch_head(client)
    server.wait_log('"GET /ws HTTP/1.1" 101', stream="stdout")
    assert "error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


def test_tornado_application_websocket_over_https_speaks_the_connections_tls_session(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """wss://: the handler's stream (`TLSStream`) goes on with the session wsgid's handshake
    made, and its close ends the session with close_notify (`rest` would raise without)."""
    server, context = https_server(wsgid, workdir)
    poll(lambda: _https_answers(server.port, context), timeout=20, what="an HTTPS answer")
    client = Client(server.port, tls=context)
    echo_then_close(client, "/ws", WS_TEXTS, lambda: _https_answers(server.port, context))
    assert_switch_head(client)
    assert _https_answers(server.port, context)  # the worker serves on
    assert "error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


def _https_answers(port: int, context: ssl.SSLContext) -> bool:
    try:
        head, _ = https_get(port, context)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_tornado_application_on_connection_close_runs_when_a_waiting_handlers_client_leaves(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, scheme: str
) -> None:
    """A handler awaiting a Future nothing else resolves (a long poll; no timer either, so the
    worker waits in epoll alone) learns that its client left: `on_connection_close` runs, as
    under tornado's own server, which watches the idle connection for its close."""
    context: ssl.SSLContext | None = None
    if scheme == "https":
        server, context = https_server(wsgid, workdir, "--graceful-timeout", "5")
        poll(lambda: _https_answers(server.port, context), timeout=20, what="an HTTPS answer")
    else:
        server = wsgid(APP, "-k", "tornado", "--graceful-timeout", "5", workers=1)
    for tag in ("first", "second"):  # and the worker serves on, the next one too
        sock = server.connect()
        client = context.wrap_socket(sock) if context is not None else sock
        with client:
            client.sendall(f"GET /wait?tag={tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            started = workdir.markers / f"started-{tag}"
            poll(started.exists, timeout=20, what="the request in the handler")
        closed = workdir.markers / f"closed-{tag}"
        poll(closed.exists, timeout=10, what="on_connection_close after the client left")
    if context is not None:
        assert _https_answers(server.port, context)
    else:
        assert server.get("/").status == 200
    assert "error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_tornado_application_request_sent_while_a_handler_waits_is_answered_after_it(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, scheme: str
) -> None:
    """What a client sends while its handler waits (read now, to see whether it left) is the
    next request: answered after the first, in order, on the same connection."""
    context: ssl.SSLContext | None = None
    if scheme == "https":
        server, context = https_server(wsgid, workdir)
        poll(lambda: _https_answers(server.port, context), timeout=20, what="an HTTPS answer")
    else:
        server = wsgid(APP, "-k", "tornado", workers=1)
    sock = server.connect(timeout=20)
    client = context.wrap_socket(sock) if context is not None else sock
    with RawConnection(client) as conn:
        conn.send(b"GET /sleep?s=1&tag=ahead HTTP/1.1\r\nHost: x\r\n\r\n")
        poll((workdir.markers / "started-ahead").exists, timeout=20, what="the handler")
        conn.send(b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = conn.read_response(), conn.read_response()
        assert first.status == 200 and json.loads(first.body)["slept"] == 1, first
        assert (second.status, second.body) == (200, b"chunk-0\nchunk-1\n"), second
        assert conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    assert "error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


def test_tornado_application_gets_the_client_certificate_and_the_connections_stream(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """`request.get_ssl_certificate()` (and its binary form) as under tornado's own server: the
    client's certificate on an HTTPS listener that asks for one, None without one; and
    `request.connection.stream`: `closed()`, `socket` (its peer's address)."""
    certs = make_certs(workdir.root / "certs")
    tls = ["--certfile", str(certs.server), "--keyfile", str(certs.server_key)]
    mtls = ["--ca-certs", str(certs.ca), "--cert-reqs", "optional"]
    server = wsgid(APP, "-k", "tornado", *tls, *mtls, workers=1, start=False)
    anonymous = ssl.create_default_context(cafile=str(certs.ca))
    anonymous.check_hostname = False
    mutual = ssl.create_default_context(cafile=str(certs.ca))
    mutual.check_hostname = False
    mutual.load_cert_chain(str(certs.client), str(certs.client_key))

    def peer(context: ssl.SSLContext) -> dict[str, object] | None:
        try:
            head, body = https_get(server.port, context, "/peer")
        except OSError:
            return None
        assert head.startswith(b"HTTP/1.1 200 "), head + body
        seen: dict[str, object] = json.loads(body)
        return seen

    seen = poll(lambda: peer(mutual), timeout=20, what="an HTTPS answer")
    assert seen["subject"] == {"organizationName": "wsgid tests", "commonName": "client"}
    der = ssl.PEM_cert_to_DER_cert(certs.client.read_text())
    assert seen["der_sha256"] == hashlib.sha256(der).hexdigest(), seen
    assert seen["closed"] is False, seen
    without = peer(anonymous)
    assert without is not None and (without["subject"], without["der_sha256"]) == (None, None)
    assert server.stop() == 0, server.errlog()

    plain = wsgid(APP, "-k", "tornado", workers=1)
    with plain.raw() as conn:
        answer = conn.request(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = json.loads(answer.body)
        assert (seen["subject"], seen["der_sha256"], seen["closed"]) == (None, None, False)
        assert seen["peer_port"] == conn.sock.getsockname()[1], seen
    assert plain.stop() == 0, plain.errlog()


def test_tornado_application_stream_says_closed_and_runs_its_close_callback_when_the_client_leaves(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """`request.connection.stream.set_close_callback` runs, and `closed()` is True, once the
    client of a waiting handler left."""
    server = wsgid(APP, "-k", "tornado", "--graceful-timeout", "5", workers=1)
    with server.connect() as client:
        client.sendall(b"GET /wait?tag=s&stream=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        poll((workdir.markers / "started-s").exists, timeout=20, what="the handler")
    poll((workdir.markers / "stream-closed-s").exists, timeout=10, what="the stream's callback")
    closed = workdir.markers / "closed-s"
    poll(closed.exists, timeout=10, what="on_connection_close")
    assert json.loads(poll(closed.read_text, timeout=10)) == {"closed": True}
    assert "error" not in server.errlog(), server.errlog()
    assert server.stop() == 0, server.errlog()


@pytest.mark.parametrize("path", ["/sleep?s=1", "/gensleep?s=1"])
def test_tornado_application_runs_200_waiting_requests_at_once_in_one_worker(
    wsgid: Callable[..., WsgidServer], path: str
) -> None:
    server = wsgid(APP, "-k", "tornado", workers=1)
    started = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(lambda _: server.get(path, timeout=60), range(200)))
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [200] * 200, server.errlog()
    assert {json.loads(a.body)["pid"] for a in answers} == set(server.wait_workers(1))
    # One at a time they would take 200 s; side by side, about one.
    assert elapsed < 15, f"200 requests of 1 s took {elapsed:.1f} s in one worker"
    assert server.stop() == 0, server.errlog()


def test_tornado_application_timers_still_fire_after_the_loop_shed_cancelled_ones(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """asyncio replaces its timer heap when most of it is cancelled timers; the worker's
    look at whether the loop has work must follow, else `asyncio.sleep` never wakes."""
    server = wsgid(APP, "-k", "tornado", workers=1)
    assert server.get("/churn").body == b"churned"
    with ThreadPoolExecutor(1) as pool:
        for _ in range(3):
            started = time.monotonic()
            sleeping = pool.submit(server.get, "/sleep?s=0.5", timeout=30)
            assert server.get("/").status == 200  # meanwhile
            assert sleeping.result(timeout=40).status == 200, server.errlog()
            assert time.monotonic() - started < 10
    assert server.stop() == 0, server.errlog()


def test_tornado_application_request_past_request_timeout_is_answered_503_and_reported(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", "--request-timeout", "2", workers=1)
    worker = server.wait_workers(1)
    answer = server.get("/sleep?s=30", timeout=30)
    assert answer.status == 503, answer
    log = server.wait_log("worker.request_timeout", timeout=10)
    assert "SleepHandler" in log or "tornado_app.py" in log, log  # the handler's stack
    # the request, in the fields the other kinds' reports name it by
    (record,) = [line for line in log.splitlines() if "worker.request_timeout" in line]
    assert " method=GET " in record and " path=/sleep " in record, record
    # the worker goes on serving: it was not replaced
    assert json.loads(server.get("/").body)["pid"] == worker[0]
    assert server.wait_workers(1) == worker
    assert server.stop() == 0, server.errlog()


def test_tornado_application_request_past_request_timeout_reaches_post_request_with_its_503(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """As on the other kinds, the `post_request` hook is called once for a request that
    request_timeout ended, and told of the 503 the client got."""
    hook_log = workdir.root / "hooks.jsonl"
    server = wsgid(
        APP, "-k", "tornado", "--request-timeout", "2",
        "--post-request", "hooks_recorder:post_request", workers=1,
        env={"TESTAPP_HOOK_LOG": str(hook_log)},
    )  # fmt: skip
    assert server.get("/sleep?s=30", timeout=30).status == 503

    def seen() -> list[object]:
        return post_request_statuses(hook_log, "/sleep")

    assert poll(seen, timeout=20, what="post_request for /sleep") == [503]
    assert server.get("/").status == 200  # the worker goes on serving
    assert server.stop() == 0, server.errlog()
    assert seen() == [503]  # once


def test_tornado_application_long_poll_outlives_timeout_when_request_timeout_is_off(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "tornado", "--timeout", "2", workers=1)
    worker = server.wait_workers(1)
    answer = server.get("/sleep?s=5", timeout=30)  # more than twice `timeout`
    assert answer.status == 200 and json.loads(answer.body)["slept"] == 5, server.errlog()
    log = server.errlog()
    assert "worker.request_timeout" not in log and "worker.timeout" not in log, log
    assert server.wait_workers(1) == worker
    assert server.stop() == 0, server.errlog()


def test_tornado_application_request_under_way_finishes_on_term(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(APP, "-k", "tornado", "--graceful-timeout", "20", workers=1)
    marker = workdir.markers / "started-term"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: server.get("/sleep?s=2&tag=term", timeout=30))
        poll(marker.exists, timeout=20, what="the request in the handler")
        server.send_signal(signal.SIGTERM)
        answer = pending.result()
    assert answer.status == 200 and json.loads(answer.body)["slept"] == 2
    assert server.wait_exit(timeout=30) == 0, server.errlog()


def test_tornado_application_worker_is_recycled_after_max_requests(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(
        APP, "-k", "tornado", "--max-requests", "3", "--max-requests-jitter", "0", workers=1
    )
    (first,) = server.wait_workers(1)
    # (The harness's readiness probe was one of the three.) The last answer says the
    # connection ends with the worker.
    with server.raw() as conn:
        answers = [conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
        while answers[-1].headers["Connection"] != "close":
            assert len(answers) < 3, "max_requests 3 not applied"
            answers.append(conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert conn.fp.read() == b""
    assert {json.loads(a.body)["pid"] for a in answers} == {first}
    replacement = poll(
        lambda: [p for p in server.worker_pids() if p != first], timeout=20, what="a new worker"
    )
    assert json.loads(server.get("/").body)["pid"] in replacement
    assert server.stop() == 0, server.errlog()


def test_wsgi_app_on_the_tornado_kind_runs_in_a_pool_thread(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(WSGI_APP, "-k", "tornado", "--threads", "2", workers=1)
    seen = [json.loads(server.get("/").body) for _ in range(3)]
    assert all(not s["main"] and s["thread"].startswith("wsgid-") for s in seen), seen
    # A pool thread that hands work to the IOLoop has it run at once, on the loop's thread.
    for _ in range(3):
        started = time.monotonic()
        ran = json.loads(server.get("/loop").body)
        assert ran["main"] is True, ran
        assert time.monotonic() - started < 0.5
    assert server.stop() == 0, server.errlog()


@pytest.mark.parametrize("app", [APP, WSGI_APP])
def test_wsgid_check_with_the_tornado_kind_accepts_what_it_serves(
    wsgid: Callable[..., WsgidServer], app: str
) -> None:
    server = wsgid(app, "-k", "tornado", workers=1, start=False)
    checked = server.check("-k", "tornado")
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stdout


def test_tornado_application_on_another_kind_is_refused_with_the_reason(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, "-k", "gthread", start=False)
    checked = server.check("-k", "gthread")
    assert checked.returncode == ExitCode.APP_LOAD_FAILED, checked
    assert "tornado application" in checked.stderr and "-k tornado" in checked.stderr
