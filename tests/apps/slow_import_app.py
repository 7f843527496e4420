"""A hello-world app that takes SLOW_IMPORT_SECONDS (default 2) to import, like a big project."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "2")))


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = b"slow import done\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
