"""Holds 1,100 open descriptors from its import on (raising its own soft RLIMIT_NOFILE to make
room), as an app with big connection pools or many model files does; preloaded, the master's
own descriptors are numbered after them, past select(2)'s FD_SETSIZE (1024)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable
from typing import Any

HELD = 1100

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < HELD + 256:
    raise RuntimeError(f"RLIMIT_NOFILE's hard limit {hard} leaves no room for {HELD} files")
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HELD + 256), hard))
FDS = [os.open(os.devnull, os.O_RDONLY) for _ in range(HELD)]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"{os.getpid()} highest {max(FDS)}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
