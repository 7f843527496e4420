"""systemd integration: socket activation and the sd_notify protocol.

Owns: reading the sockets systemd passes (`LISTEN_PID`, `LISTEN_FDS`,
`LISTEN_FDNAMES`, fds from 3) and every message wsgid sends to
`NOTIFY_SOCKET` (READY, RELOADING with MONOTONIC_USEC, STOPPING, STATUS,
WATCHDOG, EXTEND_TIMEOUT_USEC, MAINPID), through the `sdnotify` package.
Nothing is sent when `NOTIFY_SOCKET` is unset, so the calls cost nothing
outside systemd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping

from wsgid.listeners import Inherited, ListenerError

SD_LISTEN_FDS_START = 3


def inherited_sockets(environ: MutableMapping[str, str]) -> list[Inherited]:
    """The sockets systemd passed to this process, if any; unsets the variables.

    The variables are removed so that workers, children and a re-exec'd
    master never mistake them for their own (sd_listen_fds(unset=1)).
    """
    pid = environ.pop("LISTEN_PID", None)
    count = environ.pop("LISTEN_FDS", None)
    names_text = environ.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None or pid != str(os.getpid()):
        return []
    if not count.isdigit():
        raise ListenerError(f"LISTEN_FDS={count!r} is not a number")
    names = names_text.split(":") if names_text else []
    result = []
    for index in range(int(count)):
        fd = SD_LISTEN_FDS_START + index
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ListenerError(f"LISTEN_FDS: fd {fd} is not a socket ({exc.strerror})") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            sock.detach()
            raise ListenerError(f"LISTEN_FDS: fd {fd} is not a listening stream socket")
        name = names[index] if index < len(names) and names[index] != "unknown" else None
        result.append(Inherited(sock, name))
    return result


class Notifier:
    """sd_notify messages; a no-op without NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._notifier = None
        if environ.get("NOTIFY_SOCKET"):
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()
        usec = environ.get("WATCHDOG_USEC", "")
        wd_pid = environ.get("WATCHDOG_PID")
        enabled = (
            usec.isdigit() and int(usec) > 0 and (wd_pid is None or wd_pid == str(os.getpid()))
        )
        # Ping at half the interval, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = int(usec) / 2e6 if enabled else 0.0
        self._next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    def send(self, *fields: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def main_pid(self, pid: int) -> None:
        self.send(f"MAINPID={pid}")

    def extend_timeout(self, seconds: float) -> None:
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def watchdog(self, now: float) -> None:
        """Called from each turn of the master loop; pings when due."""
        if self.watchdog_interval and now >= self._next_ping:
            self._next_ping = now + self.watchdog_interval
            self.send("WATCHDOG=1")
