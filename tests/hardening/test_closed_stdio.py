"""A server started with its standard descriptors closed (`wsgid ... <&- >&- 2>&-`).

A supervisor or a shell script may start wsgid with fd 0, 1 or 2 closed. The kernel hands out
the lowest free descriptor, so wsgid's own pipes, and in a worker a client's socket, would take
numbers 0 to 2, and whatever the app or a C library writes to "stderr" (`os.write(2, ...)`, a
libpq notice, a fatal error's dump) would go into the client's response or the master's
signal pipe. wsgid opens /dev/null on each closed one before anything else, as a shell does
for a daemon, and gives Python code working `sys.stdout` and `sys.stderr`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable

import pytest

from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

APP = "stdio_app:app"
MARKER = b"STDIO-APP MARKER"


def _exchange(server: WsgidServer, path: str) -> bytes:
    """Every byte the server sends for one GET of `path` on a fresh connection."""
    with server.connect() as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _closed_stdio_server(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> WsgidServer:
    errors = workdir.logs / "error.log"

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "wsgid", APP, "--bind", f"127.0.0.1:{port}"]
        argv += [*kind_args(kind), "--workers", "1", "--error-logfile", str(errors)]
        return ["sh", "-c", f"exec {shlex.join(argv)} <&- >&- 2>&-"]

    return wsgid(None, command=command, workers=1)


@pytest.mark.parametrize("kind", WORKER_KINDS)
@pytest.mark.parametrize("fd", [0, 1, 2])
def test_an_app_writing_to_a_closed_standard_descriptor_never_reaches_the_client(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str, fd: int
) -> None:
    server = _closed_stdio_server(wsgid, workdir, kind)
    for _ in range(3):  # the same worker again: a descriptor freed by a client is reused
        received = _exchange(server, f"/fd/{fd}")
        assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received
        assert MARKER not in received, received
    assert server.stop() == 0, server.errlog()


def test_python_code_can_print_when_the_standard_streams_were_closed(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = _closed_stdio_server(wsgid, workdir, "sync")
    response = server.get("/print")
    assert server.stop() == 0
    log = (workdir.logs / "error.log").read_text()
    assert (response.status, response.body) == (200, b"printed"), log
    assert "app.error" not in log
