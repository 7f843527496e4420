"""The `combined` access log is read by goaccess (Debian package) with no invalid line."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Callable

import pytest
from test_logging_app import APP, app_args, ensure_apt, read_lines, wait_for

from support.server import WorkDir, WsgidServer

MIXED: list[bytes] = [
    b"GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\r\n",
    b"GET /pid?a=1&b=%20two HTTP/1.1\r\nHost: t\r\nReferer: https://example.test/page?x=1\r\n",
    b"HEAD /pid HTTP/1.1\r\nHost: t\r\n",
    b"GET /pid HTTP/1.0\r\n",
    b"POST /pid HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    b"PUT /items/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n",
    b"DELETE /items/7 HTTP/1.1\r\nHost: t\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\n",
    b"GET /boom HTTP/1.1\r\nHost: t\r\n",  # 500
    b"GET /custom HTTP/1.1\r\nHost: t\r\nAuthorization: Basic YWxpY2U6cHc=\r\n",  # user alice
    b'GET /q"u\\ote HTTP/1.1\r\nHost: t\r\nUser-Agent: a"b\\c\xff\xc3\xa9\r\n'
    b'Referer: http://x/"y\r\n',
    b"GET /" + b"long/" * 200 + b" HTTP/1.1\r\nHost: t\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n",  # 400, logged as "-"
    b"GET /\xff HTTP/1.1\r\nHost: t\r\n",  # 400
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 9000 + b"\r\n",  # 431
]


def send(server: WsgidServer, head: bytes) -> int:
    if b"\r\n\r\n" in head:
        head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    else:
        head += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return int(out[9:12])


def test_goaccess_reads_every_combined_line(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    problem = ensure_apt("goaccess")
    if problem:
        pytest.skip(problem)
    path = workdir.logs / "access.log"
    server = wsgid(
        APP, *app_args(), "--access-logfile", str(path), "--access-logformat", "combined",
        workers=2,
    )  # fmt: skip
    statuses = [send(server, head) for head in MIXED for _ in range(3)]
    assert {200, 400, 431, 500} <= set(statuses)
    expected = len(statuses) + 1  # + the harness's readiness probe
    wait_for(lambda: len(read_lines(path)) >= expected, what=f"{expected} records")
    server.stop()
    assert len(read_lines(path)) == expected

    report = workdir.root / "report.json"
    goaccess = shutil.which("goaccess") or "goaccess"
    result = subprocess.run(
        [goaccess, str(path), "--log-format=COMBINED", "--no-global-config", "-o", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    general = json.loads(report.read_text())["general"]
    assert general["failed_requests"] == 0, general
    assert general["total_requests"] == general["valid_requests"] == expected, general
