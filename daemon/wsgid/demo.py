"""The bundled demo application (`wsgid.demo:app`), served by `make run`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import wsgid


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Greets, and echoes the request line so a first user sees wsgid at work."""
    body = (
        f"Hello from wsgid {wsgid.__version__}!\n"
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
