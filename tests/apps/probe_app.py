"""Looks at the worker process from inside the app, and forks it.

- `/fds`: JSON {"fds": [{"fd", "target", "dev", "ino"}...], "writes": [...]}: every open
  descriptor of the worker (the targets of /proc/self/fd/*, with what fstat says). With
  TESTAPP_PIDFILE set, each descriptor that is that file is written to (`os.pwrite(fd, b"1\\n",
  0)`, as an attacker would), and with TESTAPP_PIDFILE_BY_PATH=1 the file is also opened for
  writing by its path; "writes" says what each attempt did.
- `/fork`: forks the worker; the child records its pid as `copy-<pid>` in TESTAPP_MARKERS and
  returns from the app like the parent, so it goes back into wsgid's code (a rogue copy of
  the worker). Both answer `forked`.
- anything else: the worker's pid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any


def _fds() -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            st = os.fstat(fd)
        except OSError:
            continue  # the descriptor listdir itself used
        found.append({"fd": fd, "target": target, "dev": st.st_dev, "ino": st.st_ino})
    return found


def _write_attempts(fds: list[dict[str, object]]) -> list[str]:
    path = os.environ.get("TESTAPP_PIDFILE")
    if not path:
        return []
    attempts = []
    for entry in fds:
        if entry["target"] == path:
            try:
                os.pwrite(int(str(entry["fd"])), b"1\n", 0)
                attempts.append(f"fd {entry['fd']}: written")
            except OSError as exc:
                attempts.append(f"fd {entry['fd']}: {exc}")
    if os.environ.get("TESTAPP_PIDFILE_BY_PATH") == "1":
        try:
            with open(path, "r+b") as f:
                f.write(b"1\n")
            attempts.append("path: written")
        except OSError as exc:
            attempts.append(f"path: {exc}")
    return attempts


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO")
    if path == "/fds":
        fds = _fds()
        body = json.dumps({"fds": fds, "writes": _write_attempts(fds)}).encode()
    elif path == "/fork":
        if os.fork() == 0:
            markers = os.environ["TESTAPP_MARKERS"]
            with open(os.path.join(markers, f"copy-{os.getpid()}"), "w") as f:
                f.write(str(os.getpid()))
        body = b"forked"
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body))), ("Connection", "close")])
    return [body]
