"""Writes to the standard streams the way an application and its C libraries do.

- `/fd/N`: writes `STDIO-APP MARKER` to descriptor N with write(2) (a C library's warning on
  stderr, say; `posix.write`, which eventlet's patching leaves alone), answers `wrote` or the
  OSError's name.
- `/print`: print() and sys.stderr.write(), as Python code does; answers `printed`.
"""

from __future__ import annotations

import posix
import sys
from collections.abc import Iterable
from typing import Any

MARKER = b"STDIO-APP MARKER\n"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path.startswith("/fd/"):
        try:
            posix.write(int(path[len("/fd/") :]), MARKER)
            body = b"wrote"
        except OSError as exc:
            body = type(exc).__name__.encode()
    elif path == "/print":
        print("printed by the app", flush=True)
        sys.stderr.write("written to sys.stderr by the app\n")
        sys.stderr.flush()
        body = b"printed"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
