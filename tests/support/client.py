"""Client-side helpers: multipart bodies, raw-socket requests, concurrent requests, one GET."""

from __future__ import annotations

import http.client
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from wsgid.control import unix_http

T = TypeVar("T")


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type; files: name -> (filename, data, type)."""
    boundary = "wsgid-" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data, ctype) in files.items():
        parts.append(
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def get(port: int, path: str = "/", timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of one GET to 127.0.0.1:`port` over a new connection."""
    return _get(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), path)


def get_unix(socket_path: str, path: str = "/", timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of one GET over a new connection to the UNIX socket `socket_path`."""
    return _get(unix_http(socket_path, timeout), path)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


@dataclass
class RawResult:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class RawConnection:
    """HTTP/1.1 over a raw socket, with one read buffer for the connection's whole life.

    http.client.HTTPResponse buffers per response, so it loses bytes of a following response
    that arrived in the same segment (pipelining); this reader never does.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fp = sock.makefile("rb")

    @classmethod
    def unix(cls, path: Path | str, timeout: float = 10) -> RawConnection:
        """A connection to the UNIX socket at `path`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(path))
        return cls(sock)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.fp.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, data: bytes, method: str = "GET") -> RawResult:
        self.send(data)
        return self.read_response(method)

    def read_response(self, method: str = "GET") -> RawResult:
        line = self.fp.readline(65537)
        if not line:
            raise http.client.RemoteDisconnected("connection closed before a response")
        version, status, *_ = line.decode("latin-1").split(" ", 2)
        assert version.startswith("HTTP/1."), line
        code = int(status)
        headers = http.client.parse_headers(self.fp)
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            body = b""
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        elif headers.get("Content-Length") is not None:
            body = self._read_exactly(int(headers["Content-Length"]))
        else:
            body = self.fp.read()  # delimited by the close
        return RawResult(code, headers, body)

    def _read_exactly(self, n: int) -> bytes:
        data = self.fp.read(n)
        if len(data) != n:
            raise http.client.IncompleteRead(data, n - len(data))
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.fp.readline(65537)
            if not size_line:
                raise http.client.IncompleteRead(b"".join(parts))
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.fp.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            self._read_exactly(2)


def chunked(pieces: Sequence[bytes], extensions: bool = False, trailer: str = "") -> bytes:
    """Encode `pieces` as a chunked body (optionally with chunk extensions and a trailer)."""
    out = []
    for i, piece in enumerate(pieces):
        ext = f";piece={i}" if extensions else ""
        out.append(f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n")
    out.append(b"0\r\n" + trailer.encode() + b"\r\n")
    return b"".join(out)


def run_concurrently(fns: Sequence[Callable[[], T]], timeout: float) -> list[T]:
    """Run every fn in its own thread at once; return results in order (re-raises errors)."""
    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        futures = [pool.submit(fn) for fn in fns]
        return [f.result(timeout=timeout) for f in futures]


def poll(
    condition: Callable[[], T | Literal[False] | None],
    timeout: float,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
