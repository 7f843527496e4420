"""The app of the connection-loop hardening tests (descriptors, slow readers, deadlines).

Routes (JSON `{"pid", "thread", ...}` unless said otherwise; `thread` names the thread that ran
the request):
- `/pid` and anything else: answer at once.
- `/sleep?s=1`: sleep s seconds first.
- `/leak`: open `/dev/null` until the process has no descriptor left (EMFILE) and keep every
  one, as an application leaking files would; answers how many it took.
- `/big?mb=16`: a body of that many MiB, yielded 1 MiB at a time (for slow readers: a
  streamed body makes the worker wait for its reader once its queue is full).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

LEAKED: list[int] = []
CHUNK = b"x" * (1 << 20)


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/big":
        mib = int(query.get("mb", ["16"])[0])
        start_response("200 OK", [("Content-Length", str(mib << 20))])
        return (CHUNK for _ in range(mib))
    answer: dict[str, object] = {"pid": os.getpid(), "thread": threading.current_thread().name}
    if path == "/sleep":
        time.sleep(float(query.get("s", ["1"])[0]))
    elif path == "/leak":
        try:
            while True:
                LEAKED.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            answer["leaked"] = len(LEAKED)
            answer["error"] = exc.strerror
    body = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
