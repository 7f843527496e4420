"""A hello app whose import fails once the file named by $BREAK_IF_EXISTS exists.

Lets a test boot a server, then make the next import (a HUP reload, a USR2 upgrade) fail.
It also answers with a few facts about the worker, for the system tests:
`{"pid", "uid", "gid", "groups", "umask", "instance"}` (instance = $TESTAPP_INSTANCE).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

_flag = os.environ.get("BREAK_IF_EXISTS")
if _flag and os.path.exists(_flag):
    raise RuntimeError(f"breakable_app: {_flag} exists, refusing to import")


def _umask() -> int:
    mask = os.umask(0o077)  # only way to read it; put back at once
    os.umask(mask)
    return mask


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = json.dumps(
        {
            "pid": os.getpid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "groups": sorted(os.getgroups()),
            "umask": _umask(),
            "instance": os.environ.get("TESTAPP_INSTANCE", ""),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
