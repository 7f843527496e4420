"""Answers every request with the file named by TESTAPP_BIG_FILE: through `wsgi.file_wrapper`
(sendfile), or, with `?list`, as one bytes object in a list. A body large enough to outlast
a client that does not read it, or reads it slowly. `/events?n=N`: N server-sent events, one
a second (an event stream that outlives a short `timeout`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any


def events(count: int) -> Iterable[bytes]:
    for number in range(count):
        if number:
            time.sleep(1.0)
        yield b"data: %d\n\n" % number


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/events":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return events(int(environ["QUERY_STRING"].removeprefix("n=")))
    path = os.environ["TESTAPP_BIG_FILE"]
    start_response("200 OK", [("Content-Length", str(os.path.getsize(path)))])
    if environ.get("QUERY_STRING") == "list":
        with open(path, "rb") as f:
            return [f.read()]
    # The wrapper closes the file when the server is done with it (PEP 3333).
    file = open(path, "rb")  # noqa: SIM115
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](file)
    return wrapper
