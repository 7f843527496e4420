"""HTTPS on wsgid's own listeners (issue 15), with real clients, on every worker kind.

The clients are the real ones: `openssl s_client` (protocol versions, ALPN, client
certificates, the certificate served), `curl --cacert`, `sslscan`, and Python's `ssl` where
a test needs the bytes under its control (two requests in one TLS record, a body spanning
records, half a ClientHello). The certificates come from support/tls.py, made once for the
module with the `openssl` command; the app is tests/apps/tls_app.py, which answers with the
environ's TLS keys as JSON, echoes POST bodies and serves a file through wsgi.file_wrapper.

Each acceptance item of the issue has its own test, named after it. A server is ready when a
TLS request through a verifying client is answered: the tests never rely on what a plain
HTTP request to a TLS port gets (that has its own test).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.client import RawConnection, RawResult, poll
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer, free_port
from support.tls import (
    CA_DN,
    CLIENT_DN,
    PASSWORD,
    Certs,
    certificates,
    fingerprint,
    fingerprint_of_pem,
)
from wsgid.exitcodes import ExitCode

APP = "tls_app:app"
READY_TIMEOUT = 30.0
RECORD = 16384  # the largest TLS record's plaintext: one SSL_write of fewer bytes is one record
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
VERSION_NAMES = {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}

kinds = pytest.mark.parametrize("kind", WORKER_KINDS)
versions = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])


@pytest.fixture(scope="module")
def certs(session_tmp: Path) -> Iterator[Certs]:
    with certificates(session_tmp / "tls-certs") as made:
        yield made


# ------------------------------------------------------------------------------ clients


def client_context(
    certs: Certs,
    *,
    client: tuple[Path, Path] | None = None,
    version: ssl.TLSVersion | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client context trusting the test CA (or nothing, verify=False); with a client
    certificate and key, and pinned to one TLS version, if given."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def tls_socket(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:`port`, handshake done, the server's name `localhost`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def request(path: str = "/", *fields: str, method: str = "GET", body: bytes = b"") -> bytes:
    """An HTTP/1.1 request with `Host: localhost`, `fields` ("Name: value") and `body`."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *fields]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def tls_get(port: int, context: ssl.SSLContext, path: str = "/") -> RawResult:
    """One GET over a new TLS connection, closed afterwards."""
    with RawConnection(tls_socket(port, context)) as conn:
        return conn.request(request(path, "Connection: close"))


def environ_of(reply: RawResult) -> dict[str, Any]:
    """What tls_app saw, from its 200 answer."""
    assert reply.status == 200, (reply.status, reply.body[:300])
    seen: dict[str, Any] = json.loads(reply.body)
    return seen


def der_fingerprint(der: bytes) -> str:
    """A DER certificate's SHA-256 fingerprint, written as openssl writes it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@dataclass
class Run:
    """A finished client command: its argv, exit status and output, for assertions."""

    argv: list[str]
    returncode: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n(exit {self.returncode})\n--- stdout:\n{self.out}"
            f"\n--- stderr:\n{self.err}"
        )


def run(argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> Run:
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    return Run(
        argv, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode("latin-1")
    )


GET_AND_CLOSE = request("/s_client", "Connection: close")


def s_client(certs: Certs, port: int, *args: str, send: bytes = b"") -> Run:
    """`openssl s_client` to 127.0.0.1:`port` as `localhost`, verifying against the test CA.

    With `send`, those bytes are written and the output read until the server closes
    (-ign_eof); without, it ends after the handshake."""
    argv = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
        "-CAfile", str(certs.ca), "-verify_return_error", *args,
    ]  # fmt: skip
    if send:
        argv.append("-ign_eof")
    return run(argv, stdin=send, timeout=30)


def served_fingerprint(certs: Certs, port: int) -> tuple[str, Run]:
    """The fingerprint of the certificate `openssl s_client` is served ("" if none)."""
    done = s_client(certs, port)
    found = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", done.out, re.S)
    return (fingerprint_of_pem(found.group(0)) if found else ""), done


@dataclass
class CurlReply:
    run: Run
    status: int
    body: bytes


def curl(url: str, *args: str, max_time: int = 20) -> CurlReply:
    """`curl URL` with `args`; the status code and body (the code is 0 if none came)."""
    argv = ["curl", "-sS", "--max-time", str(max_time), *args, "-w", "\n%{http_code}", url]
    done = subprocess.run(argv, capture_output=True, timeout=max_time + 30)
    body, _, code = done.stdout.rpartition(b"\n")
    out, err = done.stdout[-300:].decode(errors="replace"), done.stderr.decode(errors="replace")
    return CurlReply(Run(argv, done.returncode, out, err), int(code or b"0"), body)


# ------------------------------------------------------------------------------ servers


def cert_args(cert: Path, key: Path) -> list[str]:
    return ["--certfile", str(cert), "--keyfile", str(key)]


def wait_tls(
    server: WsgidServer,
    context: ssl.SSLContext,
    port: int | None = None,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Poll until a TLS GET on `port` (the server's own by default) is answered with 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        server.check_running()
        try:
            reply = tls_get(port or server.port, context)
            if reply.status == 200:
                return
            last = (reply.status, reply.body[:200])
        except (OSError, http.client.HTTPException) as e:  # ssl.SSLError is an OSError
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"no TLS answer on port {port or server.port} within {timeout}s (last: {last!r})"
                f"\n--- stderr:\n{server.errlog()}"
            )
        time.sleep(0.05)


def serve(
    wsgid: Callable[..., WsgidServer],
    certs: Certs,
    kind: str | None,
    *args: str,
    tls: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> WsgidServer:
    """One worker of `kind` (the default kind if None) serving tls_app over TLS on the
    harness's port, with the first server certificate unless `tls` gives other flags;
    returned once a TLS request through `context` is answered."""
    kind_flags = kind_args(kind) if kind else []
    tls_flags = list(tls) if tls is not None else cert_args(certs.server, certs.server_key)
    server = wsgid(APP, *kind_flags, *tls_flags, *args, workers=1, env=env, start=False)
    wait_tls(server, context or client_context(certs))
    server.wait_workers(1)
    return server


# ------------------------------------------------------------------ openssl s_client, curl


@kinds
def test_tls_openssl_s_client_tls12_and_tls13_succeed_tls11_fails(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    server = serve(wsgid, certs, kind)
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        done = s_client(certs, server.port, flag, send=GET_AND_CLOSE)
        assert done.returncode == 0, done
        assert f"New, {name}, Cipher is " in done.out, done
        assert "Verify return code: 0 (ok)" in done.out, done
        assert "HTTP/1.1 200 " in done.out, done
        assert f'"SSL_PROTOCOL": "{name}"' in done.out, done
    # SECLEVEL=0: OpenSSL 3 would otherwise offer TLS 1.1 with no usable cipher. This client
    # completes a TLS 1.1 handshake with a server that allows it; here it must fail.
    old = s_client(
        certs, server.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", send=GET_AND_CLOSE
    )
    assert old.returncode != 0, old
    assert "HTTP/1.1" not in old.out, old
    assert "New, (NONE), Cipher is (NONE)" in old.out, old
    written = re.search(r"SSL handshake has read \d+ bytes and written (\d+) bytes", old.out)
    assert written and int(written.group(1)) > 0, f"the client sent no ClientHello:\n{old}"
    assert "no protocols available" not in old.err, old
    assert "no ciphers available" not in old.err, old
    # The refused handshake cost the server nothing.
    assert environ_of(tls_get(server.port, client_context(certs)))["wsgi.url_scheme"] == "https"


def test_tls_one_session_ticket_per_handshake_and_the_session_resumes(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir
) -> None:
    """TLS 1.3: the server issues one session ticket (OpenSSL's default is two), and a client
    that keeps it resumes its session on its next connection."""
    server = serve(wsgid, certs, None)
    session = workdir.root / "session.pem"
    first = s_client(certs, server.port, "-tls1_3", "-sess_out", str(session), send=GET_AND_CLOSE)
    assert first.returncode == 0, first
    assert "HTTP/1.1 200 " in first.out, first
    assert first.out.count("Post-Handshake New Session Ticket arrived") == 1, first
    again = s_client(certs, server.port, "-tls1_3", "-sess_in", str(session), send=GET_AND_CLOSE)
    assert again.returncode == 0, again
    assert "Reused, TLSv1.3" in again.out, again
    assert "HTTP/1.1 200 " in again.out, again


@kinds
def test_tls_alpn_http11(wsgid: Callable[..., WsgidServer], certs: Certs, kind: str) -> None:
    server = serve(wsgid, certs, kind)
    for offer in ("http/1.1", "h2,http/1.1"):
        done = s_client(certs, server.port, "-alpn", offer, send=GET_AND_CLOSE)
        assert done.returncode == 0, done
        assert "ALPN protocol: http/1.1" in done.out, done
        assert "HTTP/1.1 200 " in done.out, done
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_socket(server.port, context) as sock, RawConnection(sock) as conn:
        assert sock.selected_alpn_protocol() == "http/1.1"
        reply = conn.request(request("/alpn", "Connection: close"))
    assert environ_of(reply)["PATH_INFO"] == "/alpn"


@kinds
def test_tls_curl_cacert(wsgid: Callable[..., WsgidServer], certs: Certs, kind: str) -> None:
    server = serve(wsgid, certs, kind)
    port = server.port
    urls = [
        (f"https://localhost:{port}/curl", ("--resolve", f"localhost:{port}:127.0.0.1")),
        (f"https://127.0.0.1:{port}/curl", ()),  # the certificate names the address too
    ]
    for url, extra in urls:
        for pinned in (("--tlsv1.2", "--tls-max", "1.2"), ("--tlsv1.3",)):
            reply = curl(url, "--cacert", str(certs.ca), *extra, *pinned)
            assert reply.run.returncode == 0 and reply.status == 200, reply.run
            seen = json.loads(reply.body)
            assert seen["wsgi.url_scheme"] == "https" and seen["HTTPS"] == "on", seen
            assert seen["SSL_PROTOCOL"] == ("TLSv1.2" if "1.2" in pinned else "TLSv1.3"), seen
    # Without --cacert curl does not trust the test CA: it is the CA that made the above pass.
    untrusted = curl(f"https://127.0.0.1:{port}/curl")
    assert untrusted.run.returncode == 60, untrusted.run
    assert "tls.certificate_expired" not in server.errlog(), server.errlog()


# ------------------------------------------------------------------ client certificates


@kinds
@pytest.mark.parametrize("cert_reqs", ["required", "optional"])
def test_tls_mtls_environ_carries_client_dn(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str, cert_reqs: str
) -> None:
    client = (certs.client, certs.client_key)
    server = serve(
        wsgid, certs, kind, "--ca-certs", str(certs.ca), "--cert-reqs", cert_reqs,
        context=client_context(certs, client=client),
    )  # fmt: skip
    expected_der = ssl.PEM_cert_to_DER_cert(certs.client.read_text())
    for version in (TLS12, TLS13):
        context = client_context(certs, client=client, version=version)
        seen = environ_of(tls_get(server.port, context, "/mtls"))
        assert seen["SSL_PROTOCOL"] == VERSION_NAMES[version], seen
        assert seen["SSL_CLIENT_VERIFY"] == "SUCCESS", seen
        assert seen["SSL_CLIENT_S_DN"] == CLIENT_DN, seen
        assert seen["SSL_CLIENT_I_DN"] == CA_DN, seen
        assert isinstance(seen["SSL_CLIENT_CERT"], str), seen
        assert ssl.PEM_cert_to_DER_cert(seen["SSL_CLIENT_CERT"]) == expected_der, seen
    done = s_client(
        certs, server.port, "-cert", str(certs.client), "-key", str(certs.client_key),
        send=GET_AND_CLOSE,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert f'"SSL_CLIENT_S_DN": "{CLIENT_DN}"' in done.out, done
    if cert_reqs == "optional":  # a client without a certificate is served, and said to be so
        seen = environ_of(tls_get(server.port, client_context(certs), "/anonymous"))
        assert seen["SSL_CLIENT_VERIFY"] == "NONE", seen
        assert seen["SSL_CLIENT_S_DN"] is None and seen["SSL_CLIENT_CERT"] is None, seen


def attempt(port: int, context: ssl.SSLContext) -> str:
    """Try one request; "refused: ..." if the TLS connection failed or closed unanswered,
    else what came back."""
    data = b""
    try:
        with tls_socket(port, context) as sock:
            sock.sendall(request("/refused", "Connection: close"))
            while chunk := sock.recv(65536):
                data += chunk
    except TimeoutError:
        return f"no answer and no close within 10s (received {data[:200]!r})"
    except (ssl.SSLError, ConnectionError) as e:
        if not data:
            return f"refused: {e!r}"
    if not data:
        return "refused: closed without an answer"
    return f"answered: {data[:300]!r}"


@kinds
@pytest.mark.parametrize("cert_reqs", ["required", "2"], ids=["required", "gunicorn-2"])
def test_tls_mtls_missing_or_wrong_client_cert_refused_when_required(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str, cert_reqs: str
) -> None:
    good = (certs.client, certs.client_key)
    server = serve(
        wsgid, certs, kind, "--ca-certs", str(certs.ca), "--cert-reqs", cert_reqs,
        context=client_context(certs, client=good),
    )  # fmt: skip
    clients = {"no certificate": None, "another CA's": (certs.rogue_client, certs.rogue_client_key)}
    for version in (TLS12, TLS13):
        for who, client in clients.items():
            outcome = attempt(server.port, client_context(certs, client=client, version=version))
            assert outcome.startswith("refused"), f"{who} over {VERSION_NAMES[version]}: {outcome}"
    rogue = s_client(
        certs, server.port, "-cert", str(certs.rogue_client), "-key", str(certs.rogue_client_key),
        send=GET_AND_CLOSE,
    )  # fmt: skip
    assert "HTTP/1.1" not in rogue.out, rogue
    # The refusals cost nothing: the good client is still served.
    seen = environ_of(tls_get(server.port, client_context(certs, client=good)))
    assert seen["SSL_CLIENT_VERIFY"] == "SUCCESS", seen


# ------------------------------------------------------------------ keep-alive, records


@kinds
def test_tls_keepalive_and_pipelining(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    server = serve(wsgid, certs, kind)
    context = client_context(certs)
    # http.client: a real client's keep-alive, one connection for every request.
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=context)
    try:
        ports = set()
        for i in range(5):
            conn.request("GET", f"/keepalive?n={i}")
            resp = conn.getresponse()
            seen = json.loads(resp.read())
            assert resp.status == 200 and not resp.will_close, (resp.status, resp.headers)
            assert seen["QUERY_STRING"] == f"n={i}", seen
            ports.add(seen["REMOTE_PORT"])
            assert conn.sock is not None
            local = conn.sock.getsockname()[1]
        assert ports == {str(local)}, ports
    finally:
        conn.close()
    # Pipelined: three requests in one write, answered in order on the one connection.
    with RawConnection(tls_socket(server.port, context)) as raw:
        raw.send(b"".join(request(f"/pipelined?n={i}") for i in range(3)))
        answers = [environ_of(raw.read_response()) for _ in range(3)]
        local = raw.sock.getsockname()[1]
    assert [a["QUERY_STRING"] for a in answers] == ["n=0", "n=1", "n=2"], answers
    assert {a["REMOTE_PORT"] for a in answers} == {str(local)}, answers


def padded(path: str, size: int) -> bytes:
    """A GET of about `size` bytes (headers of at most 4000 bytes each pad it out)."""
    bare = len(request(path, "X-Pad-00: "))
    fields: list[str] = []
    left, i = size - bare, 0
    while left > 0:
        value = "p" * min(4000, max(0, left - 14))
        fields.append(f"X-Pad-{i:02}: {value}")
        left -= len(fields[-1]) + 2
        i += 1
    return request(path, *fields)


@kinds
def test_tls_two_pipelined_requests_in_one_record_and_body_spanning_records(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    """Whatever OpenSSL holds decrypted but unread (pending()) must be served without more
    bytes from the client: the client waits for both answers and sends nothing else."""
    server = serve(wsgid, certs, kind)
    context = client_context(certs)
    for label, pair in (
        ("two small requests", request("/one?n=1") + request("/one?n=2")),
        ("two requests filling a record", padded("/one?n=1", 7900) + padded("/one?n=2", 7900)),
    ):
        assert len(pair) < RECORD, (label, len(pair))
        with tls_socket(server.port, context) as sock, RawConnection(sock) as conn:
            sock.sendall(pair)  # one SSL_write of < 16 KiB: one TLS record
            answers = [environ_of(conn.read_response()) for _ in range(2)]
        assert [a["QUERY_STRING"] for a in answers] == ["n=1", "n=2"], (label, answers)
    # A body of seven records and a bit, with the next request in the record of its tail.
    body = os.urandom(6 * RECORD + 5000)
    with tls_socket(server.port, context) as sock, RawConnection(sock) as conn:
        sock.sendall(request("/echo", method="POST", body=body) + request("/after-body"))
        echoed = conn.read_response()
        after = environ_of(conn.read_response())
        # The same body again, its head and its parts in separate writes.
        sock.sendall(request("/echo", method="POST", body=body)[: -len(body)])
        for start in range(0, len(body), 20000):
            sock.sendall(body[start : start + 20000])
        again = conn.read_response()
    assert echoed.status == 200 and len(echoed.body) == len(body), (echoed.status, len(echoed.body))
    assert echoed.body == body, "the echoed body differs from the one sent"
    assert after["PATH_INFO"] == "/after-body", after
    assert again.status == 200 and again.body == body, (again.status, len(again.body))


# ------------------------------------------------------------------ stalled handshakes


def client_hello_start(n: int = 40) -> bytes:
    """The first `n` bytes of a real ClientHello, as Python's ssl module writes it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > n, hello[:16]  # a handshake record
    return hello[:n]


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (a non-blocking socket): EOF or a reset."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True  # else: an alert before the close, read on


@kinds
def test_tls_stalled_handshakes_do_not_block_sync_worker(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    """One worker, 200 connections that send nothing or half a ClientHello: curl is still
    answered at once, and every stalled connection is closed after header_timeout."""
    header_timeout = 3
    server = serve(wsgid, certs, kind, "--header-timeout", str(header_timeout))
    worker = server.wait_workers(1)
    hello = client_hello_start(40)
    stalled: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            stalled.append(sock)
            if i % 2:
                sock.sendall(hello)
        # A blocking handshake would hold curl behind header_timeout seconds per stalled
        # connection (10 minutes); 20 s is generous for an answer that should be immediate.
        reply = curl(
            f"https://127.0.0.1:{server.port}/during-stall", "--cacert", str(certs.ca),
            max_time=20,
        )  # fmt: skip
        assert reply.run.returncode == 0 and reply.status == 200, (
            f"{reply.run}\n--- wsgid stderr:\n{server.errlog()}"
        )
        assert json.loads(reply.body)["PATH_INFO"] == "/during-stall"
        for sock in stalled:
            sock.setblocking(False)
        deadline = time.monotonic() + header_timeout + 30
        still_open = list(stalled)
        while still_open and time.monotonic() < deadline:
            still_open = [sock for sock in still_open if not closed_by_peer(sock)]
            if still_open:
                time.sleep(0.1)
        silent = sum(1 for sock in still_open if stalled.index(sock) % 2 == 0)
        assert not still_open, (
            f"{len(still_open)} of 200 stalled connections still open {header_timeout + 30}s "
            f"after curl's answer ({silent} silent, {len(still_open) - silent} with half a "
            f"ClientHello); header_timeout is {header_timeout}s\n--- stderr:\n{server.errlog()}"
        )
    finally:
        for sock in stalled:
            sock.close()
    # The same worker served throughout and still does.
    assert server.wait_workers(1) == worker
    assert environ_of(tls_get(server.port, client_context(certs)))["pid"] == worker[0]


# ------------------------------------------------------------------ rotation


def install(source: Path, target: Path) -> None:
    """Replace `target` by a copy of `source` in one rename, as a deployment tool would."""
    staging = target.with_name(target.name + ".new")
    shutil.copy(source, staging)
    os.replace(staging, target)


@kinds
def test_tls_rotation_on_hup_new_fingerprint_old_keepalive_connection_works(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir, kind: str
) -> None:
    live_cert, live_key = workdir.root / "live-cert.pem", workdir.root / "live-key.pem"
    install(certs.server, live_cert)
    install(certs.server_key, live_key)
    old, new = fingerprint(certs.server), fingerprint(certs.server2)
    assert old != new
    server = serve(wsgid, certs, kind, "--keep-alive", "60", tls=cert_args(live_cert, live_key))
    assert served_fingerprint(certs, server.port)[0] == old
    log = server.wait_log("tls.certificate")
    assert old in log, f"the certificate's fingerprint {old} is not logged at start:\n{log}"
    context = client_context(certs)
    with tls_socket(server.port, context, timeout=20) as sock, RawConnection(sock) as conn:
        before = environ_of(conn.request(request("/before-hup")))
        assert der_fingerprint(sock.getpeercert(binary_form=True) or b"") == old

        install(certs.server2, live_cert)
        install(certs.server2_key, live_key)
        server.send_signal(signal.SIGHUP)
        seen: list[tuple[str, Run]] = []

        def rotated() -> bool:
            seen.append(served_fingerprint(certs, server.port))
            return seen[-1][0] == new

        try:
            poll(rotated, timeout=30, interval=0.2, what="the new certificate")
        except AssertionError:
            raise AssertionError(
                f"s_client still sees {seen[-1][0]} (old {old}, new {new}) 30s after HUP\n"
                f"{seen[-1][1]}\n--- wsgid stderr:\n{server.errlog()}"
            ) from None
        server.wait_log(new, timeout=10)  # tls.certificate, logged on the reload too

        # The connection opened before the HUP still gets its next request answered.
        after = environ_of(conn.request(request("/after-hup")))
        assert after["REMOTE_PORT"] == before["REMOTE_PORT"], (before, after)
        assert after["PATH_INFO"] == "/after-hup", after
    with tls_socket(server.port, context) as fresh:
        assert der_fingerprint(fresh.getpeercert(binary_form=True) or b"") == new
    assert "reload.failed" not in server.errlog(), server.errlog()


@kinds
def test_tls_graceful_stop_does_not_wait_for_stalled_handshakes(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    """TERM with connections stuck before the end of their handshake: no request can be
    under way on them, so the worker closes them and exits, without waiting for
    header_timeout or graceful_timeout (both 60 s here)."""
    server = serve(wsgid, certs, kind, "--header-timeout", "60", "--graceful-timeout", "60")
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(5)]
    try:
        # Some bytes each: the listener's TCP_DEFER_ACCEPT holds a silent connection in the
        # kernel, where the worker never sees it.
        for sock in stalled:
            sock.sendall(client_hello_start(40))
        # One worker, accepting in order: once a later connection is answered, the
        # stalled ones are the worker's.
        assert tls_get(server.port, client_context(certs)).status == 200
        assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
        for sock in stalled:
            sock.settimeout(10)
            assert sock.recv(1) == b"", "a stalled connection was left open"
    finally:
        for sock in stalled:
            sock.close()


def test_tls_reload_on_change_serves_a_certificate_renewed_in_place(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir
) -> None:
    """tls_reload_on_change: files replaced on disk (no HUP) are served once they settle,
    as a mounted Kubernetes secret or a certbot renewal replaces them."""
    live_cert, live_key = workdir.root / "live-cert.pem", workdir.root / "live-key.pem"
    install(certs.server, live_cert)
    install(certs.server_key, live_key)
    new = fingerprint(certs.server2)
    server = serve(wsgid, certs, None, "--tls-reload-on-change",
                   tls=cert_args(live_cert, live_key))  # fmt: skip
    assert served_fingerprint(certs, server.port)[0] == fingerprint(certs.server)
    install(certs.server2, live_cert)
    install(certs.server2_key, live_key)
    poll(lambda: served_fingerprint(certs, server.port)[0] == new, timeout=30, interval=0.2,
         what="the renewed certificate, without a HUP")  # fmt: skip
    log = server.wait_log("tls.files_changed", timeout=10)
    assert "reload.failed" not in server.errlog(), log


# ------------------------------------------------------------------ scanner


WEAK_CIPHER = re.compile(r"RC4|DES|NULL|EXP|anon|ADH|AECDH|MD5|-SHA$")


@kinds
def test_tls_sslscan_finds_no_weak_protocol_or_cipher(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    assert shutil.which("sslscan"), "sslscan is not installed (scripts/apt-deps.sh installs it)"
    server = serve(wsgid, certs, kind)
    target = f"127.0.0.1:{server.port}"
    scan = run(["sslscan", "--no-colour", target], timeout=100)
    report = f"{scan}\n--- wsgid stderr:\n{server.errlog()}"
    assert scan.returncode == 0, report
    protocols = dict(
        re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)\s*$", scan.out, re.M)
    )
    assert protocols.get("TLSv1.2") == "enabled", f"the scan did not reach the server:\n{report}"
    assert protocols.get("TLSv1.3") == "enabled", report
    for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert protocols.get(old) == "disabled", f"{old}: {protocols.get(old)}\n{report}"
    accepted = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)", scan.out, re.M)
    assert accepted, f"no accepted cipher found in the scan:\n{report}"
    weak = [
        (protocol, bits, name)
        for protocol, bits, name in accepted
        if protocol not in ("TLSv1.2", "TLSv1.3") or int(bits) < 128 or WEAK_CIPHER.search(name)
    ]
    assert not weak, f"weak ciphers accepted: {weak}\n{report}"
    vulnerable = [
        line
        for line in scan.out.splitlines()
        if "vulnerable" in line and "not vulnerable" not in line
    ]
    assert not vulnerable, report


# ------------------------------------------------------------------ configuration


def config_error_case(case: str, certs: Certs, missing: Path) -> tuple[list[str], list[str]]:
    """The flags of one broken TLS configuration, and what its error message must name."""
    server = cert_args(certs.server, certs.server_key)
    address = f"127.0.0.1:{free_port()}"
    cases: dict[str, tuple[list[str], list[str]]] = {
        "certfile-unreadable": (cert_args(missing, certs.server_key), ["certfile", str(missing)]),
        "keyfile-unreadable": (cert_args(certs.server, missing), ["keyfile", str(missing)]),
        "ca-certs-unreadable": (
            [*server, "--ca-certs", str(missing), "--cert-reqs", "required"],
            ["ca_certs", str(missing)],
        ),
        "key-mismatch": (
            cert_args(certs.server, certs.mismatched_key),
            ["keyfile", str(certs.mismatched_key)],
        ),
        "encrypted-key-without-password": (
            cert_args(certs.server, certs.encrypted_key),
            ["keyfile", str(certs.encrypted_key)],
        ),
        "cert-reqs-without-ca-certs": (
            [*server, "--cert-reqs", "required"],
            ["cert_reqs", "ca_certs"],
        ),
        "tls-binds-unknown": ([*server, "--tls-binds", address], ["tls_binds", address]),
        "keylog-file-unopenable": (
            [*server, "--tls-keylog-file", str(missing.parent / "no-such-dir" / "keys.txt")],
            ["tls_keylog_file", "flag:--tls-keylog-file", "cannot be opened"],
        ),
        "certfile-without-key-and-no-keyfile": (
            ["--certfile", str(certs.server)],
            ["certfile", "without keyfile it must hold the certificate and its private key"],
        ),
        "tls-binds-without-certfile": (
            ["--bind", address, "--tls-binds", address],
            ["tls_binds", "certfile"],
        ),
    }
    return cases[case]


@pytest.mark.parametrize(
    "case",
    [
        "certfile-unreadable",
        "keyfile-unreadable",
        "ca-certs-unreadable",
        "key-mismatch",
        "encrypted-key-without-password",
        "cert-reqs-without-ca-certs",
        "tls-binds-unknown",
        "tls-binds-without-certfile",
        "keylog-file-unopenable",
        "certfile-without-key-and-no-keyfile",
    ],
)
def test_tls_config_errors_name_setting(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir, case: str
) -> None:
    args, named = config_error_case(case, certs, workdir.root / "no-such-file.pem")
    server = wsgid(APP, *args, start=False)
    code = server.wait_exit(30)
    errors = server.errlog()
    assert code == ExitCode.CONFIG, f"exit {code}, expected {int(ExitCode.CONFIG)}:\n{errors}"
    for needle in named:
        assert needle in errors, f"{needle!r} is not named in the error:\n{errors}"
    assert "Traceback" not in errors, errors


SSL_CONTEXT_HOOK = """\
import ssl

def ssl_context(config, default_factory):
    if config.ciphers == "FAIL":
        raise RuntimeError("refused by the hook")
    context = default_factory()  # wsgid's own, from the settings: the certificate is loaded
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context
"""

# A hook as gunicorn users write it to build their own context (gunicorn#3279: a key
# password), from gunicorn's default factory: it assigns config.cert_reqs to verify_mode and
# passes config.ssl_version to SSLContext, which take numbers.
GUNICORN_STYLE_HOOK = """\
import ssl

cert_reqs = ssl.CERT_REQUIRED

def ssl_context(config, default_factory):
    assert config.is_ssl and config.ssl_options["cert_reqs"] == ssl.CERT_REQUIRED
    context = ssl.SSLContext(config.ssl_version)
    context.load_cert_chain(certfile=config.certfile, keyfile=config.keyfile)
    context.verify_mode = config.cert_reqs
    if config.ca_certs:
        context.load_verify_locations(cafile=config.ca_certs)
    if config.ciphers:
        context.set_ciphers(config.ciphers)
    return context
"""


def test_tls_ssl_context_hook_of_a_gunicorn_config_is_what_is_served(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir
) -> None:
    """gunicorn's ssl_context hook, from a Python config: it gets the settings (gunicorn's
    names) and wsgid's factory, and the context it returns is served (here TLS 1.3 only); a
    hook that raises stops the start with a configuration error naming it."""
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(SSL_CONTEXT_HOOK)
    server = serve(wsgid, certs, None, "-c", str(conf))
    assert s_client(certs, server.port, "-tls1_3", send=GET_AND_CLOSE).returncode == 0
    old = s_client(certs, server.port, "-tls1_2", send=GET_AND_CLOSE)
    assert old.returncode != 0 and "HTTP/1.1" not in old.out, old
    server.stop()

    failing = wsgid(APP, "-c", str(conf), *cert_args(certs.server, certs.server_key),
                    "--ciphers", "FAIL", start=False)  # fmt: skip
    assert failing.wait_exit(30) == ExitCode.CONFIG, failing.errlog()
    assert "the ssl_context hook failed: RuntimeError: refused by the hook" in failing.errlog()


def test_tls_ssl_context_hook_written_for_gunicorn_gets_its_types_and_serves(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir
) -> None:
    """`config.cert_reqs` and `config.ssl_version` are the numbers gunicorn's Config holds
    (a hook assigning them crashed the start with "'str' object cannot be interpreted as an
    integer"), and `is_ssl` and `ssl_options` are there: the hook's context, which requires
    a client certificate, is the one served."""
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(GUNICORN_STYLE_HOOK)
    good = client_context(certs, client=(certs.client, certs.client_key))
    server = serve(wsgid, certs, None, "-c", str(conf), "--ca-certs", str(certs.ca), context=good)
    assert environ_of(tls_get(server.port, good))["wsgi.url_scheme"] == "https"
    with pytest.raises((ssl.SSLError, OSError)):
        tls_get(server.port, client_context(certs))  # no client certificate: refused
    assert "ssl_context hook failed" not in server.errlog()
    assert server.stop() == 0, server.errlog()


def test_tls_expired_certificate_warns(wsgid: Callable[..., WsgidServer], certs: Certs) -> None:
    """The server starts and serves (an expired certificate is the operator's problem to
    see, not a reason to go down), and says so at start."""
    unverified = client_context(certs, verify=False)
    server = serve(
        wsgid, certs, None, tls=cert_args(certs.expired, certs.expired_key), context=unverified
    )
    log = server.wait_log("tls.certificate_expired")
    warning = next(line for line in log.splitlines() if "tls.certificate_expired" in line)
    assert "[info]" not in warning and "[debug]" not in warning, warning
    assert environ_of(tls_get(server.port, unverified))["wsgi.url_scheme"] == "https"
    # A verifying client sees why: the certificate has expired.
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        tls_get(server.port, client_context(certs))


@pytest.mark.parametrize("source", ["file", "env"])
def test_tls_encrypted_key_with_password_file(
    wsgid: Callable[..., WsgidServer], certs: Certs, source: str
) -> None:
    tls = cert_args(certs.server, certs.encrypted_key)
    env = None
    if source == "file":
        tls += ["--keyfile-password-file", str(certs.password_file)]
    else:
        tls += ["--keyfile-password-env", "TLS_KEY_PASSWORD"]
        env = {"TLS_KEY_PASSWORD": PASSWORD}
    server = serve(wsgid, certs, None, tls=tls, env=env)
    seen = environ_of(tls_get(server.port, client_context(certs)))
    assert seen["wsgi.url_scheme"] == "https", seen
    for text in (server.errlog(), server.outlog()):
        assert PASSWORD not in text, text


# ------------------------------------------------------------------ listeners


@kinds
@pytest.mark.parametrize("how", ["flags", "toml"])
def test_tls_plain_and_tls_listeners_side_by_side(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir, kind: str, how: str
) -> None:
    tls_port = free_port()
    tls_address = f"127.0.0.1:{tls_port}"
    if how == "flags":
        args = [
            *cert_args(certs.server, certs.server_key), "--bind", tls_address,
            "--tls-binds", tls_address,
        ]  # fmt: skip
    else:
        config = workdir.root / "tls.toml"
        config.write_text(
            "[tls]\n"
            f"certfile = {json.dumps(str(certs.server))}\n"
            f"keyfile = {json.dumps(str(certs.server_key))}\n"
            f"tls_binds = [{json.dumps(tls_address)}]\n"
        )
        args = ["--config", str(config), "--bind", tls_address]
    # The harness's own listener is the plain one: start() waits for it to answer HTTP.
    server = wsgid(APP, *kind_args(kind), *args, workers=1)
    context = client_context(certs)
    wait_tls(server, context, port=tls_port)
    plain = json.loads(server.get("/plain").body)
    assert plain["wsgi.url_scheme"] == "http", plain
    assert plain["HTTPS"] is None and plain["SSL_PROTOCOL"] is None, plain
    secure = environ_of(tls_get(tls_port, context, "/secure"))
    assert secure["wsgi.url_scheme"] == "https" and secure["HTTPS"] == "on", secure
    assert secure["pid"] == plain["pid"], (plain, secure)  # one worker serves both
    with pytest.raises(OSError):  # ssl.SSLError, or a reset
        tls_get(server.port, context)  # the plain listener speaks no TLS


@kinds
def test_tls_plain_http_to_tls_port_gets_400(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    server = serve(wsgid, certs, kind)
    with server.raw() as conn:
        conn.send(request("/plain-to-tls"))
        reply = conn.read_response()
        assert reply.status == 400, (reply.status, reply.headers.items(), reply.body[:200])
        assert b"{" not in reply.body, reply.body[:200]  # wsgid's answer, not the app's
        assert conn.fp.read() == b"", "the connection stays open after the 400"
    assert environ_of(tls_get(server.port, client_context(certs)))["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    "line", [b"DELETE / HTTP/1.1", b"OPTIONS * HTTP/1.1", b"PATCH / HTTP/1.1", b"PRI * HTTP/2.0"]
)
def test_tls_plain_http_with_any_method_to_tls_port_gets_400(
    wsgid: Callable[..., WsgidServer], certs: Certs, line: bytes
) -> None:
    """OpenSSL recognises only GET, POST, HEAD, PUT and CONNECT as plain HTTP; the others (and
    an HTTP/2 client that skipped TLS) got no answer at all."""
    server = serve(wsgid, certs, None)
    with server.raw() as conn:
        conn.send(line + b"\r\nHost: localhost\r\n\r\n")
        reply = conn.read_response()
        assert reply.status == 400, (reply.status, reply.body[:200])
        assert conn.fp.read() == b""


@kinds
def test_tls_a_body_cut_by_an_app_error_ends_without_close_notify(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    """An HTTP/1.0 response without Content-Length ends where the connection does: after a
    cut, a close_notify would make 6,000 bytes of an unfinished body look whole (to nginx's
    HTTP/1.0 proxying, say). The connection ends without one; a whole response still ends
    with one."""
    tls = cert_args(certs.server, certs.server_key)
    server = wsgid("misbehaving_app:app", *kind_args(kind), *tls, workers=1, start=False)
    context = client_context(certs)
    wait_tls(server, context)

    def read_all(path: str) -> tuple[bytes, bool]:
        """(what came, whether it ended with close_notify)."""
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(
            raw, server_hostname="localhost", suppress_ragged_eofs=False
        ) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except ssl.SSLEOFError:
                return data, False
            return data, True

    cut, notified = read_all("/midway?sent=6000")
    assert cut.startswith(b"HTTP/1.1 200 ") and cut.endswith(b"x" * 1000), cut[:200]
    assert not notified, "a cut body ended with close_notify, as if it were whole"
    whole, notified = read_all("/")
    assert whole.endswith(b"\r\n\r\nok") and notified, whole
    assert "app.error_after_response_started" in server.errlog()


@kinds
def test_tls_sslkeylogfile_env_ignored(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir, kind: str
) -> None:
    stray = workdir.root / "stray-keylog.txt"
    server = serve(wsgid, certs, kind, env={"SSLKEYLOGFILE": str(stray)})
    for version in (TLS12, TLS13):
        environ_of(tls_get(server.port, client_context(certs, version=version)))
    assert s_client(certs, server.port, send=GET_AND_CLOSE).returncode == 0
    assert not stray.exists(), f"SSLKEYLOGFILE was honoured:\n{stray.read_text()[:500]}"
    # tls_keylog_file asks for it: then the secrets are written (the check above can fail).
    asked = workdir.root / "asked-keylog.txt"
    logging = serve(wsgid, certs, kind, "--tls-keylog-file", str(asked))
    for version in (TLS12, TLS13):
        environ_of(tls_get(logging.port, client_context(certs, version=version)))

    def secrets() -> bool:
        text = asked.read_text() if asked.exists() else ""
        return "CLIENT_RANDOM " in text and "CLIENT_HANDSHAKE_TRAFFIC_SECRET " in text

    poll(secrets, timeout=10, what=f"TLS 1.2 and 1.3 secrets in {asked}")
    assert not stray.exists()
    assert stat.S_IMODE(asked.stat().st_mode) == 0o600  # the owner's alone, whatever the umask


# ------------------------------------------------------------------ environ, file_wrapper


@kinds
@versions
def test_tls_environ_https_protocol_cipher(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str, version: ssl.TLSVersion
) -> None:
    server = serve(wsgid, certs, kind)
    context = client_context(certs, version=version)
    with tls_socket(server.port, context) as sock, RawConnection(sock) as conn:
        seen = environ_of(conn.request(request("/environ?x=1")))
        protocol, cipher = sock.version(), sock.cipher()
    assert cipher is not None
    assert seen["wsgi.url_scheme"] == "https", seen
    assert seen["HTTPS"] == "on", seen
    assert seen["SSL_PROTOCOL"] == protocol == VERSION_NAMES[version], (protocol, seen)
    assert seen["SSL_CIPHER"] == cipher[0], (cipher, seen)
    assert seen["SSL_CLIENT_VERIFY"] == "NONE", seen  # cert_reqs none: no certificate asked
    assert seen["SSL_CLIENT_S_DN"] is None and seen["SSL_CLIENT_CERT"] is None, seen
    assert seen["QUERY_STRING"] == "x=1", seen


@kinds
def test_tls_file_wrapper_streams_without_sendfile(
    wsgid: Callable[..., WsgidServer], certs: Certs, workdir: WorkDir, kind: str
) -> None:
    """tls_app reads the file upper-cased: sendfile(2) would send the lower-case bytes on
    disk, in clear, inside the TLS stream. The plain listener beside it still uses sendfile
    (sendfile is on by default), which shows the body tells the two apart."""
    on_disk = (b"wsgi.file_wrapper over tls, read and sent in blocks\n" * 30000)[: 1_500_000 + 7]
    big = workdir.root / "big.txt"
    big.write_bytes(on_disk)
    tls_port = free_port()
    tls_address = f"127.0.0.1:{tls_port}"
    server = wsgid(
        APP, *kind_args(kind), *cert_args(certs.server, certs.server_key),
        "--bind", tls_address, "--tls-binds", tls_address,
        workers=1, env={"TESTAPP_TLS_FILE": str(big)},
    )  # fmt: skip
    context = client_context(certs)
    wait_tls(server, context, port=tls_port)
    with RawConnection(tls_socket(tls_port, context, timeout=30)) as conn:
        for i in range(2):  # twice on one connection: the stream ends where it should
            reply = conn.request(request(f"/file?n={i}"))
            assert reply.status == 200, (reply.status, reply.body[:200])
            assert len(reply.body) == len(on_disk), (len(reply.body), len(on_disk))
            assert reply.body == on_disk.upper(), "the file came through TLS altered"
    assert server.get("/file", timeout=30).body == on_disk, "the plain listener did not sendfile"


# ------------------------------------------------------------ edges of a session's life


class BioClient:
    """A TLS 1.3 client whose records are sent exactly when, and as, a test chooses: an
    `ssl.SSLObject` over memory BIOs on a plain socket."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def handshake(self) -> bytes:
        """Run the handshake up to the client's last flight, which is returned unsent."""
        while True:
            try:
                self.obj.do_handshake()
                return self.outgoing.read()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                assert data, "the server closed during the handshake"
                self.incoming.write(data)

    def sealed(self, plain: bytes) -> bytes:
        self.obj.write(plain)
        return self.outgoing.read()

    def close_notify(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):  # the server's is not waited for
            self.obj.unwrap()
        return self.outgoing.read()

    def plain_until_closed(self) -> bytes:
        """Everything the server sends until it closes, decrypted."""
        chunks = []
        while data := self.sock.recv(65536):
            chunks.append(data)
        self.incoming.write(b"".join(chunks))
        plain = []
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            while chunk := self.obj.read(65536):
                plain.append(chunk)
        return b"".join(plain)

    def response(self) -> tuple[bytes, bytes]:
        """The ciphertext that carried the server's next response, and the response, read
        until it is whole (its head and `Content-Length` bytes of body)."""
        raw, plain = bytearray(), bytearray()
        while not whole_response(plain):
            data = self.sock.recv(65536)
            assert data, ("the server closed before its response was whole", bytes(plain))
            raw += data
            self.incoming.write(data)
            with contextlib.suppress(ssl.SSLWantReadError):
                while chunk := self.obj.read(65536):
                    plain += chunk
        return bytes(raw), bytes(plain)

    def close(self) -> None:
        self.sock.close()


def whole_response(plain: bytes | bytearray) -> bool:
    head, found, body = plain.partition(b"\r\n\r\n")
    if not found:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert length, head
    return len(body) >= int(length.group(1))


def record_types(raw: bytes) -> list[int]:
    """The content type of each TLS record in `raw` (23: application data), which must hold
    whole records only."""
    types = []
    while raw:
        assert len(raw) >= 5, raw
        length = int.from_bytes(raw[3:5], "big")
        assert len(raw) >= 5 + length, (len(raw), length)
        types.append(raw[0])
        raw = raw[5 + length :]
    return types


@kinds
@pytest.mark.parametrize("size", [13, 12_000])
def test_tls_a_response_that_fits_one_record_is_sent_as_one(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str, size: int
) -> None:
    # Every record costs OpenSSL a fixed amount of work at each end, more than joining a
    # response's head to a body this small: sealed apart, the two records cost the TLS hello
    # benchmark about a tenth of its rate (docs/performance.md).
    server = serve(wsgid, certs, kind)
    client = BioClient(server.port, client_context(certs, version=TLS13))
    try:
        client.sock.sendall(client.handshake())
        body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        answers = []
        # The first response may come after TLS 1.3's session tickets; the second alone.
        for _ in range(2):
            client.sock.sendall(client.sealed(request("/echo", method="POST", body=body)))
            answers.append(client.response())
    finally:
        client.close()
    raw, plain = answers[1]
    assert plain.startswith(b"HTTP/1.1 200 ") and plain.endswith(body), server.errlog()
    assert record_types(raw) == [23], (record_types(raw), len(plain))


@kinds
@pytest.mark.parametrize("notify", [True, False], ids=["close_notify", "fin-only"])
def test_tls_a_request_sent_with_the_handshake_end_and_a_fin_is_answered(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str, notify: bool
) -> None:
    # The request's records reach the server in the read that ends the handshake, then the
    # FIN: they are served, as a plain client's last bytes before its FIN are.
    server = serve(wsgid, certs, kind)
    client = BioClient(server.port, client_context(certs))
    try:
        finished = client.handshake()
        records = client.sealed(request("/with-the-finished"))
        client.sock.sendall(finished + records + (client.close_notify() if notify else b""))
        client.sock.shutdown(socket.SHUT_WR)
        answer = client.plain_until_closed()
    finally:
        client.close()
    assert answer.startswith(b"HTTP/1.1 200 "), (answer[:200], server.errlog())
    assert b"with-the-finished" in answer


@kinds
def test_tls_pipelined_requests_before_a_close_notify_are_all_answered(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    server = serve(wsgid, certs, kind)
    client = BioClient(server.port, client_context(certs))
    try:
        client.sock.sendall(client.handshake())
        both = client.sealed(request("/first") + request("/second"))
        client.sock.sendall(both + client.close_notify())  # and no FIN: the socket stays open
        answer = client.plain_until_closed()
    finally:
        client.close()
    assert answer.count(b"HTTP/1.1 200 ") == 2, (answer[:400], server.errlog())
    assert answer.index(b"/first") < answer.index(b"/second")


def proxied_tls_get(port: int, context: ssl.SSLContext, path: str = "/") -> RawResult:
    """A GET over TLS after a PROXY v1 header naming 203.0.113.7:4242 as the client."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        raw.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 443\r\n")
        sock = context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise
    with RawConnection(sock) as conn:
        return conn.request(request(path, "Connection: close"))


def until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


@kinds
def test_tls_a_refused_proxy_header_is_answered_in_plain_text_and_the_worker_lives(
    wsgid: Callable[..., WsgidServer], certs: Certs, kind: str
) -> None:
    # Before the header is read there is no TLS session: the 400 (a missing header) and the
    # 408 (a header that never ends) go in plain text, as on a PROXY listener without TLS.
    context = client_context(certs)
    server = wsgid(
        APP, *kind_args(kind), *cert_args(certs.server, certs.server_key),
        "--proxy-protocol", "v1", "--header-timeout", "1", workers=1, start=False,
    )  # fmt: skip
    server.wait_ready(ready=lambda: environ_of(proxied_tls_get(server.port, context)))
    (worker,) = server.wait_workers(1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as no_header:
        no_header.sendall(request("/"))
        assert until_closed(no_header).startswith(b"HTTP/1.1 400 "), server.errlog()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as unfinished:
        unfinished.sendall(b"PROXY TCP4 203.0.113.7")
        assert until_closed(unfinished).startswith(b"HTTP/1.1 408 "), server.errlog()
    seen = environ_of(proxied_tls_get(server.port, context))
    assert seen["REMOTE_PORT"] == "4242", seen  # the header's client
    assert server.worker_pids() == [worker], server.errlog()
    assert "worker.crashed" not in server.errlog()
