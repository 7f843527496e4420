"""Reading what `tests/apps/hooks_recorder.py` wrote: one JSON record per hook call."""

from __future__ import annotations

import json
from pathlib import Path


def post_request_statuses(log: Path, path: str) -> list[object]:
    """The status each `post_request` call for a request to `path` was told, in order."""
    lines = log.read_text().splitlines() if log.exists() else []
    calls = [json.loads(line)["facts"] for line in lines]
    return [c.get("status") for c in calls if c.get("path") == path]
