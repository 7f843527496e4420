"""Answers every request with the file named by TESTAPP_BIG_FILE: through `wsgi.file_wrapper`
(sendfile), or, with `?list`, as one bytes object in a list. A body large enough to outlast
a client that does not read it, or reads it slowly."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = os.environ["TESTAPP_BIG_FILE"]
    start_response("200 OK", [("Content-Length", str(os.path.getsize(path)))])
    if environ.get("QUERY_STRING") == "list":
        with open(path, "rb") as f:
            return [f.read()]
    # The wrapper closes the file when the server is done with it (PEP 3333).
    file = open(path, "rb")  # noqa: SIM115
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](file)
    return wrapper
