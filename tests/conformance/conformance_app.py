"""The WSGI application the wire-level conformance suite serves (tests/conformance only).

Owns: reporting back, as JSON, what a request looked like from the application's side, and a
few routes that make the response side misbehave on purpose. The suite serves it with
`python -m wsgid conformance_app:app` (this directory on PYTHONPATH) and one worker, so the
call counter below is exact.

Routes (any other path is `echo`):
- `/_calls`      {"calls": N, "pid": P}: how many requests reached the app (this route is not
                 counted), so a test can prove "the app was not called".
- echo           reads the whole body with read(size) and returns {"env": {...}, "body": "...",
                 "calls": N, "pid": P}: the request keys of PEP 3333, every HTTP_* key, and the
                 body as latin-1 text.
- `/_r/ignore`   answers without touching wsgi.input.
- `/_r/fixed`    b"hello world" as a one-item list (the server can frame it with Content-Length).
- `/_r/resp`     a response built from the query: status (`code`+`reason`, or `status` verbatim),
                 `cl` (a Content-Length header), `hdr`/`val` (one extra header), `body`, and
                 `mode` = list | gen (a generator the server cannot measure in advance) |
                 bytes | str | none (what an app returns by mistake: the body itself as
                 bytes or str, or None). With `sub`, the status and every header name and
                 value are a str subclass (`Text`, as Django's SafeString or a StrEnum member).
- `/_r/stream`   reads the body in small pieces and returns its size (errors propagate).
- `/_r/swallow`  reads the body, catches the error wsgi.input raises, and answers 200 anyway.
- `/_r/lines`    reads the body with readlines(None) and then read1(None) (io's "no hint"),
                 and returns {"lines": [...], "rest": "..."}.
- `/_r/started`  starts its response ("started;" goes out with the head, from the iterable,
                 or through write() with `?via=write`), then streams the body back as it
                 reads it: a streaming echo or proxy.
- `/_r/big`      `size` bytes of `big_body(size)`, as a one-item list (`mode=list`), from a
                 generator in two pieces, the first the larger (`mode=gen`), or through
                 write() (`mode=write`); with `cl`, the Content-Length is given.
- `/_v/...`      echo wrapped in `wsgiref.validate.validator`; WSGIWarning is an error here,
                 so any complaint of the validator turns into a 500.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

REQUEST_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "RAW_URI",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
)

_calls = 0


def _read_all(environ: Environ, size: int = 65536) -> bytes:
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    while True:
        chunk = stream.read(size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _json(start_response: StartResponse, data: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = _read_all(environ)
    env = {k: environ[k] for k in REQUEST_KEYS if k in environ}
    env.update((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    return _json(
        start_response,
        {"env": env, "body": body.decode("latin-1"), "calls": _calls, "pid": os.getpid()},
    )


def ignore(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ignored"]


def fixed(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello world"]


def resp(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"], keep_blank_values=True).items()}
    status = q.get("status") or f"{q.get('code', '200')} {q.get('reason', 'X')}"
    headers = [("Content-Type", "text/plain")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    if "hdr" in q:
        headers.append((q["hdr"], q.get("val", "")))
    body = q.get("body", "").encode("latin-1")
    if "sub" in q:
        status = Text(status)
        headers = [(Text(name), Text(value)) for name, value in headers]
    start_response(status, headers)
    mode = q.get("mode")
    if mode == "gen":
        return _pieces(body)
    if mode in MISTAKES:
        return cast("Iterable[bytes]", MISTAKES[mode](body))
    return [body] if body else []


# What apps return by mistake instead of an iterable of bytes (PEP 3333 wants [body]).
MISTAKES: dict[str, Callable[[bytes], object]] = {
    "bytes": lambda body: body,
    "str": lambda body: body.decode("latin-1"),
    "none": lambda body: None,
}


class Text(str):
    """A str subclass, as frameworks hand them on: Django's SafeString (format_html,
    mark_safe), Jinja's Markup, StrEnum members."""


def _pieces(body: bytes) -> Iterator[bytes]:
    # Several pieces, so a server that warns once per piece would show it.
    third = max(1, len(body) // 3)
    for i in range(0, len(body), third):
        yield body[i : i + third]


def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    size = len(_read_all(environ, 4096))
    return _json(start_response, {"size": size})


def swallow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    try:
        size = len(_read_all(environ, 4096))
    except OSError as exc:
        return _json(start_response, {"swallowed": str(exc)})
    return _json(start_response, {"size": size})


def lines(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    got = [line.decode("latin-1") for line in stream.readlines(None)]
    rest = stream.read1(None).decode("latin-1")
    return _json(start_response, {"lines": got, "rest": rest})


def started(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["QUERY_STRING"] == "via=write":
        write(b"started;")
        return _echo_pieces(environ["wsgi.input"], b"")
    return _echo_pieces(environ["wsgi.input"], b"started;")


def _echo_pieces(stream: Any, first: bytes) -> Iterator[bytes]:
    if first:
        yield first  # the head goes out with it, before the body is read
    while chunk := stream.read(4096):
        yield chunk


def big_body(size: int) -> bytes:
    """`size` bytes that differ from those of any other size and repeat nowhere, so that a
    piece sent twice, dropped or out of order shows."""
    return random.Random(size).randbytes(size)


def big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"], keep_blank_values=True).items()}
    body = big_body(int(q["size"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in q:
        headers.append(("Content-Length", str(len(body))))
    write = start_response("200 OK", headers)
    mode = q.get("mode", "list")
    if mode == "write":
        write(body)
        return []
    if mode == "gen":
        cut = len(body) * 3 // 4
        return iter((body[:cut], body[cut:]))
    return [body]


ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "/_r/ignore": ignore,
    "/_r/fixed": fixed,
    "/_r/resp": resp,
    "/_r/stream": stream,
    "/_r/swallow": swallow,
    "/_r/started": started,
    "/_r/lines": lines,
    "/_r/big": big,
}

validated_echo = validator(echo)


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    global _calls
    path = environ.get("PATH_INFO", "")
    if path == "/_calls":
        return _json(start_response, {"calls": _calls, "pid": os.getpid()})
    _calls += 1
    if path.startswith("/_v/"):
        return validated_echo(environ, start_response)
    return ROUTES.get(path, echo)(environ, start_response)
