"""Every wire case of `conformance_cases.CASES` again, over HTTPS, for every worker kind and
build: the TLS connection code (workers/tls_connection.py) is compiled in one and interpreted
in the other. Both builds add about 45 s to the suite on 2 CPUs (the plain cases take 9 s),
nearly all of it full handshakes, three per case (the case and the `/_calls` probes around it).

Owns: the HTTPS server of this module (`server`: one per worker kind and build, with
`--certfile/--keyfile`), its certificates (support/tls.py, made once for the module), and the
proof that wsgid's HTTP rules are the same behind TLS. Each case is judged by
`test_wire_cases.check_case`, exactly as over plain HTTP, and sent two ways: whole (a case of
under 16 KiB is then one TLS record, so a pipelined case puts several requests in one record),
and one byte per `send()`, which over TLS is one byte per record (`Wire` over an
`ssl.SSLSocket`). The handshake is stepped in the worker's event loop and each read must hand
the parser everything OpenSSL decrypted: a request left inside OpenSSL would stall the case.
Truncated cases (`cut`) end with the client's close_notify instead of a TCP half-close
(`Wire.shut_write`). Plus pipelining at its limit: one full 16 KiB record of GETs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.conformance_cases import CASES, Case
from conformance.conformance_server import ConformanceServer, running
from conformance.test_connection import check_large_bodies
from conformance.test_wire_cases import PROBE, check_case
from support.tls import Certs, certificates

RECORD = 16384  # the most plaintext one TLS record carries (one SSL_write of up to this much)


@pytest.fixture(scope="module")
def certs(session_tmp: Path) -> Iterator[Certs]:
    directory = Path(tempfile.mkdtemp(prefix="conformance-tls-certs-", dir=session_tmp))
    with certificates(directory) as made:
        yield made


@pytest.fixture(scope="module")
def server(
    kind: str, build: str, certs: Certs, session_tmp: Path, request: pytest.FixtureRequest
) -> Iterator[ConformanceServer]:
    """wsgid with default settings serving HTTPS only, one per worker kind and build (it
    replaces conftest's plain `server` in this module)."""
    package = request.getfixturevalue("pure_wsgid") if build == "pure" else None
    with running(session_tmp, kind, package=package, certs=certs) as srv:
        yield srv


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wire_case_tls(server: ConformanceServer, case: Case, mode: str) -> None:
    check_case(server, case, mode)


def test_pipelined_gets_filling_one_record_come_back_in_order(server: ConformanceServer) -> None:
    """RFC 9112 §9.3.2 behind TLS: as many GETs as fit in one record (16 KiB), all decrypted
    by one read of the worker, answered in order (none left waiting inside OpenSSL), and the
    connection still framed right for the request after them."""
    requests = [b"GET /rec/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(1000)]
    n = 0
    while sum(map(len, requests[: n + 1])) <= RECORD:
        n += 1
    before = server.calls()
    with server.wire(timeout=10) as w:
        assert w.tls
        w.send(b"".join(requests[:n]))  # one sendall of at most RECORD bytes: one record
        envs = [w.read_reply().json()["env"] for _ in range(n)]
        assert [env["PATH_INFO"] for env in envs] == [f"/rec/{i}" for i in range(n)]
        assert {env["wsgi.url_scheme"] for env in envs} == {"https"}
        w.send(PROBE)
        assert w.read_reply().json()["env"]["PATH_INFO"] == "/_probe"
        assert w.state_after() == "eof"
    assert server.calls() - before == n + 1


def test_worker_survived_every_case(server: ConformanceServer) -> None:
    """Runs last in this module (pytest keeps definition order): no worker died on the way."""
    server.assert_workers_unchanged()


def test_large_bodies_reach_a_slow_pipelining_client_whole_and_in_order_tls(
    server: ConformanceServer,
) -> None:
    """Each large body sealed after its head (workers/tls_connection.py), whole and in
    order behind TLS as over plain HTTP."""
    check_large_bodies(server)
