"""The WSGI application the logging tests serve (`test_logging_app:app`), and their helpers.

It lives under `tests/integration/` (named like a test module, so it is collected but holds
no tests) and is served with `--pythonpath` pointing here. Routes:

- `/boom?...`: raises RuntimeError("boom <query>") before responding (500 + traceback);
- `/print?msg=M`: prints M to stdout and `M-err` to stderr;
- `/many?n=N&tail=T`: prints `many I` for I in 0..N-1 to stdout (buffered, no flush), then
  writes T without a newline;
- `/stdlib?msg=M`: logs M at WARNING through the stdlib logger `testapp` (extra: user=alice);
- `/errors?msg=M`: writes M to `wsgi.errors`;
- `/sleep?s=S`: sleeps S seconds (timeout dumps);
- `/rid`: answers JSON {"environ": HTTP_X_REQUEST_ID, "wsgid": wsgid.request_id, "pid": pid};
- `/custom`: a response with `X-Custom: custom-value`;
- `/own-rid`: a response with the app's own `X-Request-ID: app-chosen`;
- `/pid` and anything else: `ok` (2 bytes).

`post_fork` is a hook (`--post-fork test_logging_app:post_fork`) that prints
`post_fork in <pid>`, for the capture_output tests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs

HERE = Path(__file__).resolve().parent
APP = "test_logging_app:app"
REPO = HERE.parent.parent

_log = logging.getLogger("testapp")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    msg = query.get("msg", ["-"])[0]
    headers = [("Content-Type", "text/plain")]
    body = b"ok"
    if path == "/boom":
        raise RuntimeError(f"boom {environ.get('QUERY_STRING', '')}")
    if path == "/print":
        print(msg, flush=True)
        print(f"{msg}-err", file=sys.stderr, flush=True)
    elif path == "/many":
        for i in range(int(query.get("n", ["1"])[0])):
            print(f"many {i}")
        sys.stdout.write(query.get("tail", [""])[0])
    elif path == "/stdlib":
        _log.warning("stdlib %s", msg, extra={"user": "alice"})
    elif path == "/errors":
        environ["wsgi.errors"].write(f"{msg}\n")
    elif path == "/sleep":
        time.sleep(float(query.get("s", ["1"])[0]))
    elif path == "/rid":
        body = json.dumps(
            {
                "environ": environ.get("HTTP_X_REQUEST_ID"),
                "wsgid": environ.get("wsgid.request_id"),
                "pid": os.getpid(),
            }
        ).encode()
    elif path == "/custom":
        headers.append(("X-Custom", "custom-value"))
    elif path == "/own-rid":
        headers.append(("X-Request-ID", "app-chosen"))
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


# --------------------------------------------------------------------------- helpers


def post_fork(server: Any, worker: Any) -> None:
    print(f"post_fork in {os.getpid()}", flush=True)


def app_args() -> list[str]:
    """The arguments that make wsgid find this module."""
    return ["--pythonpath", str(HERE)]


def ensure_apt(*packages: str) -> str | None:
    """Install missing Debian packages (scripts/apt-deps.sh); None, or why that failed."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return None
    try:
        result = subprocess.run(
            [str(REPO / "scripts" / "apt-deps.sh"), *missing],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot install {missing}: {exc}"
    if result.returncode != 0 or any(not _installed(p) for p in missing):
        return f"cannot install {missing}: {result.stdout[-500:]}{result.stderr[-1500:]}"
    return None


def _installed(package: str) -> bool:
    binary = {"rsyslog": "rsyslogd"}.get(package, package)
    return bool(shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin"))


T = TypeVar("T")


def wait_for(
    check: Callable[[], T | Literal[False] | None], timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def read_lines(path: Path) -> list[str]:
    """The whole lines of `path` so far: a record still being written (no newline yet) is
    left for the next look."""
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        return []
    return text[: text.rfind("\n") + 1].splitlines()
