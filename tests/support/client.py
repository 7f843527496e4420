"""Client-side helpers: multipart bodies, raw-socket requests, concurrent requests."""

from __future__ import annotations

import http.client
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

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


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


@dataclass
class RawResult:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def read_response(sock: socket.socket, method: str = "GET") -> RawResult:
    """Parse one HTTP response from a raw socket (leaves the socket open for the next one)."""
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return RawResult(resp.status, resp.headers, body)


def send_raw(sock: socket.socket, data: bytes, method: str = "GET") -> RawResult:
    sock.sendall(data)
    return read_response(sock, method)


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


def poll(condition: Callable[[], T], timeout: float, interval: float = 0.02, what: str = "") -> T:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
