"""Hooks that hold each new worker until the test lets it go.

`post_fork` creates `post_fork-<pid>` in $TESTAPP_MARKERS, then waits (polling, 30 s at most)
for `go` in the same directory. While it waits, the worker has not installed its own signal
handlers yet (tests/integration/test_lifecycle_signals.py sends a stop then), nor imported the
app.

`post_worker_init` does the same with `post_worker_init-<pid>` and `go-post_worker_init`: the
worker has imported the app but has not booted yet, and is let go apart from the `post_fork`
ones (tests/integration/test_lifecycle_reload.py boots one generation before another).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    _hold("post_fork", "go")


def post_worker_init(worker: Any) -> None:
    _hold("post_worker_init", "go-post_worker_init")


def _hold(hook: str, go: str) -> None:
    markers = Path(os.environ["TESTAPP_MARKERS"])
    (markers / f"{hook}-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while not (markers / go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
