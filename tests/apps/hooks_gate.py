"""A post_fork hook that holds each new worker until the test lets it go.

The hook creates `post_fork-<pid>` in $TESTAPP_MARKERS, then waits (polling, 30 s at most)
for `go` in the same directory. While it waits, the worker has not installed its own
signal handlers yet: tests/integration/test_lifecycle_signals.py sends a stop then.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    markers = Path(os.environ["TESTAPP_MARKERS"])
    (markers / f"post_fork-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while not (markers / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
