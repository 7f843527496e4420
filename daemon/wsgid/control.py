"""`wsgid status`: the master's control socket, and the command that reads it.

Owns: where the control socket is (`control_socket`), who may use it, the status document
the master answers with, and its reading by `wsgid status`.

- The socket is opt-in: a path, or "auto" (the default), which puts it in systemd's
  `RuntimeDirectory` (`$RUNTIME_DIRECTORY/control.sock`) and nowhere else: never in the
  working directory or under `$HOME` by default. `control_socket_disable` (gunicorn's
  name) turns it off.
- It is a side listener (side_listener.py) on a UNIX socket of mode `control_socket_mode`
  (0600), and each connection's peer credentials are checked: only root and the master's
  own user are answered; anyone else is refused and logged.
- It is read-only: `GET /status` is the only page. It changes nothing in the server.
- A path whose directory is missing or not writable is a configuration error (`check_place`,
  exit 2 at start and from `wsgid check`), not a failed bind.

The status document (JSON): the master (pid, app, generation, state, workers wanted), its
listeners and side listeners, totals, and one entry per worker: pid, slot, generation,
state (booting, idle, busy, stopping), age, requests answered, memory (RSS), and the
requests it has in the app with their method, path, request id and age.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client

SOCKET_NAME = "control.sock"
TIMEOUT = 5.0


def socket_path(setting: str, disabled: bool, environ: Mapping[str, str]) -> str | None:
    """The control socket's path for `control_socket` = `setting` (None: there is none)."""
    if disabled or setting == "off":
        return None
    if setting != "auto":
        return setting
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return os.path.join(runtime, SOCKET_NAME) if runtime else None


def check_place(path: str) -> None:
    """ConfigError if no socket can be made at `path` (its directory is missing, or this
    process may not write it): a mistake in the configuration, found before binding by the
    master and by `wsgid check` alike, and told apart from a bind that fails."""
    from wsgid import paths
    from wsgid.runtime import ConfigError

    try:
        paths.creatable(path)
    except OSError as exc:
        raise ConfigError(
            f"control_socket {path}: the socket cannot be created there:"
            f" {exc.strerror or exc}; set control_socket to a path in a directory the master"
            " may write, or to off"
        ) from None


def peer(sock: socket.socket) -> tuple[int, int]:
    """The (pid, uid) of the process at the other end of a UNIX socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def allowed(uid: int) -> bool:
    """Whether a peer of user `uid` may read the status: root, or the master's own user."""
    return uid in (0, os.geteuid())


class StatusError(Exception):
    """The status could not be read (the message says why, and what to do)."""


def unix_http(path: str, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
    """An HTTP connection to the UNIX socket `path`, connected when the first request goes."""
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                raise
            self.sock = sock

    return UnixConnection("localhost", timeout=timeout)


def fetch(path: str) -> dict[str, Any]:
    """The status document of the master listening on `path` (the `wsgid status` side: the
    master never imports http.client for it)."""
    import http.client

    conn = unix_http(path)
    try:
        conn.request("GET", "/status")
        resp = conn.getresponse()
        body = resp.read()
    except FileNotFoundError:
        raise StatusError(f"no control socket at {path}: is wsgid running with it?") from None
    except ConnectionRefusedError:
        raise StatusError(f"nothing answers at {path}: the master is not running") from None
    except PermissionError:
        raise StatusError(
            f"{path}: permission denied; run `wsgid status` as the server's user or root"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        # A refused peer is closed unanswered: say so rather than "connection reset".
        raise StatusError(
            f"{path}: no answer ({exc or type(exc).__name__}); only root and the server's"
            " user may read the status"
        ) from None
    finally:
        conn.close()
    if resp.status != 200:
        raise StatusError(f"{path}: {resp.status} {resp.reason}")
    document: dict[str, Any] = json.loads(body)
    return document


def render(doc: Mapping[str, Any]) -> str:
    """The status document as `wsgid status` prints it."""
    master = doc["master"]
    lines = [
        f"wsgid {master['version']}, master {master['pid']} [{master['app']}]: {master['state']},"
        f" generation {master['generation']}, {master['workers_wanted']} workers wanted",
        f"listening: {', '.join(doc['listeners']) or '-'}",
    ]
    if doc.get("side"):
        lines.append(f"health and metrics: {doc['side']}")
    totals = doc["totals"]
    restarts = ", ".join(f"{cause} {n}" for cause, n in totals["restarts"].items())
    lines.append(f"requests answered: {totals['requests']}; restarts: {restarts}")
    lines.append("")
    header = ("PID", "SLOT", "GEN", "STATE", "AGE", "REQUESTS", "RSS MiB", "IN THE APP")
    rows = [header]
    for worker in doc["workers"]:
        running = worker["running"]
        now = "; ".join(
            f"{r['method']} {r['path']} ({r['age']:.1f} s, id {r['request_id']})" for r in running
        )
        if worker["active"] > len(running):
            now += f" (+{worker['active'] - len(running)} more)"
        memory = worker["memory"]
        rows.append(
            (
                str(worker["pid"]), str(worker["slot"]), str(worker["generation"]),
                worker["state"], _age(worker["age"]), str(worker["requests"]),
                f"{memory / 1048576:.1f}" if memory else "-", now or "-",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _age(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
