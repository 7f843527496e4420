"""Answers every request with the file named by TESTAPP_BIG_FILE through `wsgi.file_wrapper`
(sendfile): a body large enough to outlast a client that does not read it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = os.environ["TESTAPP_BIG_FILE"]
    start_response("200 OK", [("Content-Length", str(os.path.getsize(path)))])
    # The wrapper closes the file when the server is done with it (PEP 3333).
    file = open(path, "rb")  # noqa: SIM115
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](file)
    return wrapper
