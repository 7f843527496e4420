"""An app that breaks its own responses on request, for the hardening tests of wsgid's answers.

Routes:
- `/raise`: raises before `start_response`, so wsgid answers 500 itself.
- `/exit`: calls `sys.exit(3)` before `start_response` (a 500 too: the worker keeps serving).
- `/length?declared=N&sent=M&mode=list|gen`: declares `Content-Length: N` and gives M bytes
  of body (`x`), as a one-item list or from a generator (in 1000-byte pieces).
- `/midway?sent=N`: a 200 without Content-Length (close-delimited over HTTP/1.0, chunked
  over 1.1) whose body fails after N bytes (`x`, in 1000-byte pieces).
- anything else: `200 ok`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs


def _pieces(size: int) -> Iterator[bytes]:
    while size > 0:
        yield b"x" * min(size, 1000)
        size -= 1000


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/raise":
        raise RuntimeError("misbehaving_app: asked to fail")
    if path == "/exit":
        sys.exit(3)
    if path == "/length":
        declared, sent = int(query["declared"]), int(query["sent"])
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(declared))]
        )
        return [b"x" * sent] if query.get("mode", "list") == "list" else _pieces(sent)
    if path == "/midway":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _failing_after(int(query["sent"]))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _failing_after(size: int) -> Iterator[bytes]:
    yield from _pieces(size)
    raise RuntimeError("misbehaving_app: failing midway through the body")
