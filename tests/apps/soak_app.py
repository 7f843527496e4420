"""The app of the hardening soak (tests/hardening/test_soak.py): a few endpoints whose answers
a client can check byte for byte.

Routes:
- `/` (and any other path): `hello, soak\\n`.
- `/echo`: the request body, read whole, sent back as it came (any method).
- `/slow`: sleeps 10 ms first (a view waiting on a database), then `slow\\n`.
- `/error`: raises, so wsgid answers 500 (an expected answer, not a failure).
- `/big?kib=N`: N KiB (default 1024) of `BIG_BYTE`, yielded in 64 KiB pieces (so a response
  the server cannot measure in advance, sent chunked), for clients that never read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

HELLO = b"hello, soak\n"
SLOW = b"slow\n"
SLOW_SECONDS = 0.01
BIG_BYTE = b"b"
PIECE = 64 * 1024

StartResponse = Callable[..., Any]


def _read_all(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    while chunk := stream.read(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _big(kib: int) -> Iterator[bytes]:
    piece = BIG_BYTE * PIECE
    left = kib * 1024
    while left > 0:
        yield piece[:left]
        left -= PIECE


def _fixed(start_response: StartResponse, body: bytes, ctype: str = "text/plain") -> list[bytes]:
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/echo":
        return _fixed(start_response, _read_all(environ), "application/octet-stream")
    if path == "/slow":
        time.sleep(SLOW_SECONDS)
        return _fixed(start_response, SLOW)
    if path == "/error":
        raise RuntimeError("soak_app: /error fails on purpose")
    if path == "/big":
        kib = int(parse_qs(environ.get("QUERY_STRING", "")).get("kib", ["1024"])[0])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _big(kib)
    return _fixed(start_response, HELLO)
