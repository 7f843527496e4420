"""An echo app wrapped in `wsgiref.validate.validator`.

Every WSGIWarning the validator raises about wsgid's environ or handling becomes an exception
(so a 500 and a traceback in the error log), and the validator's own assertions (e.g. an iterable
whose close() wsgid never called) print "AssertionError" on stderr: tests check both.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    chunks = []
    while True:
        # The validator insists on read(size): read() with no argument is not PEP 3333.
        chunk = stream.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    body = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "content_length": environ.get("CONTENT_LENGTH", ""),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING", ""),
            "body_size": len(data),
            "body_sha256": hashlib.sha256(data).hexdigest(),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


application = validator(echo)
