"""The USR2 hand-off: what an old master passes to the new master it execs.

Owns: the environment variables of an upgrade, written by the old master in the child it
forks to exec the new one (`exec_new_master`) and read by the new master as it starts
(`take`). Writer and reader sit side by side because the format is a contract between two
versions of wsgid: the running one and the one installed to replace it (or to go back to).
It therefore never changes incompatibly, and the reader accepts everything an earlier
writer wrote.

- `_WSGID_INHERIT_FDS`: the listening sockets, as `FD:NAME:OWNED` entries joined by commas.
  FD is the descriptor, left open across the exec. NAME is the socket's systemd name
  (LISTEN_FDNAMES), empty when it has none: it keeps `bind = systemd:NAME` working in the
  new master. OWNED is 1 for the sockets wsgid bound, whose unix socket files it unlinks
  when it stops, and 0 for systemd's, which are never ours to unlink. A bare `FD` (the
  format before names were carried) reads as `FD::1`.
- `_WSGID_OLD_MASTER`: the old master's pid. Until that process exits the new master's
  pidfile is `PIDFILE.2`; and the new master does not daemonize again.
- `_WSGID_SIDE_FD`: the side listener of `metrics_bind` (health probes), one `FD:NAME:OWNED`
  entry; absent when there is none. Apart from the application's sockets, so that a new
  master serving every passed socket (bare socket activation) never takes it for one. A
  master older than it leaves it unread in its environment, and binds its own.
- `_WSGID_PROMETHEUS_DIR`: the directory of the app's prometheus_client files that the old
  master made (`app_metrics.py`): the new master removes it when it exits (the directory
  itself is named in `PROMETHEUS_MULTIPROC_DIR`, which the new master inherits). Absent when
  the old master made none.

Not `WSGID_*`: those are settings. They are taken out of the environment as they are read, so
no worker, nor a later upgrade, sees them. A hand-off that does not parse is refused with a
message naming the variable: the new master exits and the old one keeps serving.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import NamedTuple, NoReturn

from wsgid.listeners import Inherited, Listener, adopt_fd

ENV_INHERIT_FDS = "_WSGID_INHERIT_FDS"
ENV_OLD_MASTER = "_WSGID_OLD_MASTER"
ENV_SIDE_FD = "_WSGID_SIDE_FD"
ENV_PROMETHEUS_DIR = "_WSGID_PROMETHEUS_DIR"


class HandoffError(Exception):
    """The hand-off variables are present but do not parse."""


class PassedSocket(NamedTuple):
    """One listening socket handed over: its descriptor, systemd name and ownership."""

    fd: int
    name: str | None = None
    owned: bool = True


class Handoff(NamedTuple):
    """Everything the old master passes to the new one."""

    old_master: int
    sockets: tuple[PassedSocket, ...]
    side: PassedSocket | None = None  # the side listener (metrics_bind)
    metrics_dir: str | None = None  # the app metrics directory the old master made

    def adopt(self) -> list[Inherited]:
        """The passed descriptors as sockets for `listeners.bind_all` (ListenerError if one
        is not a listening socket)."""
        return [Inherited(adopt_fd(s.fd, ENV_INHERIT_FDS), s.name, s.owned) for s in self.sockets]

    def adopt_side(self) -> list[Inherited]:
        """The passed side listener as a pool of one for `listeners.bind_one`, or none."""
        side = self.side
        if side is None:
            return []
        return [Inherited(adopt_fd(side.fd, ENV_SIDE_FD), side.name, side.owned)]


def encode(handoff: Handoff) -> dict[str, str]:
    """The environment variables that carry `handoff`."""
    env = {
        ENV_INHERIT_FDS: ",".join(_entry(s) for s in handoff.sockets),
        ENV_OLD_MASTER: str(handoff.old_master),
    }
    if handoff.side is not None:
        env[ENV_SIDE_FD] = _entry(handoff.side)
    if handoff.metrics_dir is not None:
        env[ENV_PROMETHEUS_DIR] = handoff.metrics_dir
    return env


def _entry(passed: PassedSocket) -> str:
    return f"{passed.fd}:{passed.name or ''}:{int(passed.owned)}"


def decode(environ: Mapping[str, str]) -> Handoff | None:
    """The hand-off in `environ`; None when this master was not exec'd by an upgrade."""
    fds, old_master = environ.get(ENV_INHERIT_FDS), environ.get(ENV_OLD_MASTER)
    if fds is None and old_master is None:
        return None
    if fds is None or old_master is None:
        present, missing = (
            (ENV_OLD_MASTER, ENV_INHERIT_FDS) if fds is None else (ENV_INHERIT_FDS, ENV_OLD_MASTER)
        )
        raise HandoffError(f"upgrade hand-off: {present} is set but {missing} is not")
    if not _is_number(old_master) or int(old_master) <= 0:
        raise HandoffError(f"upgrade hand-off: {ENV_OLD_MASTER}={old_master!r} is not a pid")
    entries = fds.split(",") if fds else []
    side = environ.get(ENV_SIDE_FD)
    return Handoff(
        int(old_master),
        tuple(_passed_socket(entry, ENV_INHERIT_FDS) for entry in entries),
        _passed_socket(side, ENV_SIDE_FD) if side is not None else None,
        environ.get(ENV_PROMETHEUS_DIR) or None,
    )


def _passed_socket(entry: str, variable: str) -> PassedSocket:
    fd, _, rest = entry.partition(":")
    name, _, owned = rest.partition(":")
    if not _is_number(fd) or owned not in ("", "0", "1"):
        raise HandoffError(f"upgrade hand-off: {variable} entry {entry!r} is not FD:NAME:OWNED")
    return PassedSocket(int(fd), name or None, owned != "0")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def take(environ: MutableMapping[str, str]) -> Handoff | None:
    """`decode(environ)`, removing the variables from `environ` (even when they do not parse)."""
    names = (ENV_INHERIT_FDS, ENV_OLD_MASTER, ENV_SIDE_FD, ENV_PROMETHEUS_DIR)
    found = {key: environ.pop(key) for key in names if key in environ}
    return decode(found)


def from_upgrade(environ: Mapping[str, str]) -> bool:
    """True in a master exec'd by an upgrade, before `take` has read the hand-off."""
    return bool(environ.get(ENV_OLD_MASTER))


def exec_new_master(
    listeners: Sequence[Listener],
    old_master: int,
    cwd: str,
    side: Listener | None = None,
    metrics_dir: str | None = None,
) -> NoReturn:
    """Exec a new master that inherits `listeners`, the side listener `side` and the app
    metrics directory `metrics_dir` to remove: in a child forked by the old master."""
    handoff = Handoff(
        old_master,
        tuple(_passed(lst) for lst in listeners),
        _passed(side) if side is not None else None,
        metrics_dir,
    )
    for passed in (*handoff.sockets, *([handoff.side] if handoff.side else [])):
        os.set_inheritable(passed.fd, True)
    os.chdir(cwd)
    # The interpreter's own argv, so a wrapper script or `-I` comes back too.
    os.execve(sys.executable, list(sys.orig_argv), {**os.environ, **encode(handoff)})


def _passed(listener: Listener) -> PassedSocket:
    return PassedSocket(listener.fileno(), listener.spec.name, listener.created)
