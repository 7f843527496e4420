"""Sleeps on request, for timing, concurrency and signal tests.

- `/sleep?s=1[&tag=T]`: sleep s seconds, then answer JSON {pid, slept, remote_port}. With
  TESTAPP_MARKERS set, the file `$TESTAPP_MARKERS/started-T` is created when the request
  reaches the app, so a test knows the request is in flight without sleeping itself.
- `/pid` and anything else: answer at once with the same JSON (slept 0).
- `?read=1` on any of them: read the whole request body first; the JSON says how many bytes
  (`read`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    slept = 0.0
    if environ.get("PATH_INFO") == "/sleep":
        slept = float(query.get("s", ["1"])[0])
        markers = os.environ.get("TESTAPP_MARKERS")
        tag = query.get("tag", [None])[0]
        if markers and tag:
            with open(os.path.join(markers, f"started-{tag}"), "w") as f:
                f.write(str(os.getpid()))
        time.sleep(slept)
    answer: dict[str, Any] = {"pid": os.getpid(), "slept": slept}
    answer["remote_port"] = environ.get("REMOTE_PORT")
    if query.get("read"):
        answer["read"] = len(environ["wsgi.input"].read())
    body = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
