"""systemd integration: socket activation and the sd_notify protocol.

Owns: reading the sockets systemd passes (`LISTEN_PID`, `LISTEN_FDS`,
`LISTEN_FDNAMES`, fds from 3) and every message wsgid sends to
`NOTIFY_SOCKET` (READY, RELOADING with MONOTONIC_USEC, STOPPING, STATUS,
WATCHDOG, EXTEND_TIMEOUT_USEC, MAINPID), through the `sdnotify` package.
Nothing is sent when `NOTIFY_SOCKET` is unset, so the calls cost nothing
outside systemd.

Binary upgrade (USR2) under systemd: the unit needs `NotifyAccess=all`, since
the new master is not the process systemd started. Exactly one master speaks
for the service at a time, because with `NotifyAccess=all` systemd believes
any process of the unit: a `STOPPING=1` from the master being replaced would
stop the whole unit. So:

- the new master announces `MAINPID=` together with its first `READY=1`, once
  its workers have booted, never before: a new master that fails to boot was
  never the main process, and the old one carries on;
- the old master, while its successor runs, sends no state changes (only its
  watchdog pings, which keep the unit alive while the new master boots);
- a new master that stops while the old one still runs (a roll-back) hands
  `MAINPID` back to it instead of announcing `STOPPING=1`;
- systemd named the old master in `WATCHDOG_PID`; the new master, its child,
  pings in its place;
- once the old master has exited and systemd has adopted the new one, the new
  master names a stand-in (one of its workers) and then itself again in
  `MAINPID=`. systemd decides whether a main process is its own child only when
  `MAINPID=` changes, and ours was not yet; a main process it believes is not
  its child is never waited for on stop: it would be SIGKILLed at once instead
  of being given its graceful stop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping

from wsgid import processes
from wsgid.listeners import Inherited, ListenerError, adopt_fd

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
        sock = adopt_fd(SD_LISTEN_FDS_START + index, "LISTEN_FDS")
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
        self._watchdog_usec = environ.get("WATCHDOG_USEC", "")
        self._watchdog_pid = environ.get("WATCHDOG_PID")
        self.watchdog_interval = self._watchdog_for(str(os.getpid()))
        self._next_ping = 0.0
        self._successor = 0  # old master: the master exec'd on USR2, while it runs
        self._predecessor = 0  # new master: the master that exec'd us
        self._main = True  # False in a new master until it announced MAINPID
        self._adopted = False  # new master: systemd was told again once it adopted us

    def _watchdog_for(self, pid: str) -> float:
        usec = self._watchdog_usec
        if not usec.isdigit() or int(usec) == 0:
            return 0.0
        if self._watchdog_pid is not None and self._watchdog_pid != pid:
            return 0.0
        # Ping at half the interval, as sd_watchdog_enabled(3) advises.
        return int(usec) / 2e6

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    def send(self, *fields: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        if not self._main:
            # A new master takes over only now that its workers have booted.
            self._main = True
            self.send(f"MAINPID={os.getpid()}", "READY=1", f"STATUS={status}")
        elif not self._replaced():
            self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        if self._replaced():
            return
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self, status: str = "stopping") -> None:
        """STOPPING=1 with `status` (said once per stop: a drain says it at its start)."""
        if self._replaced():
            return  # the new master is (or is about to be) the service: let it run
        if self._predecessor and processes.running(self._predecessor):
            if self._main:  # roll-back: the old master is the service again
                self.send(f"MAINPID={self._predecessor}", "STATUS=upgrade rolled back")
            return
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        if not self._replaced():
            self.send(f"STATUS={text}")

    def main_pid(self, pid: int) -> None:
        """Called by a master exec'd on USR2: MAINPID=`pid` goes out with its first READY=1."""
        self._predecessor = os.getppid()
        self._main = False
        if not self.watchdog_interval:
            self.watchdog_interval = self._watchdog_for(str(self._predecessor))

    def upgrading(self, successor: int) -> None:
        """Called by the old master on USR2: `successor` speaks for the service while it runs."""
        self._successor = successor

    def _check_adopted(self) -> None:
        """After an upgrade: once the old master is gone, make systemd re-check our parentage."""
        if os.getppid() == self._predecessor:
            return
        self._adopted = True
        stand_ins = _children()
        if stand_ins:
            self.send(f"MAINPID={stand_ins[0]}")
            self.send(f"MAINPID={os.getpid()}")

    def _replaced(self) -> bool:
        return bool(self._successor) and processes.running(self._successor)

    def extend_timeout(self, seconds: float) -> None:
        if not self._replaced():
            self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def watchdog_due_in(self, now: float) -> float:
        """Seconds until the next watchdog ping is due (a large number if none)."""
        if not self.watchdog_interval:
            return 3600.0
        return max(0.0, self._next_ping - now)

    def watchdog(self, now: float) -> None:
        """Called from each turn of the master loop; pings when due."""
        if self._predecessor and self._main and not self._adopted:
            self._check_adopted()
        if self.watchdog_interval and now >= self._next_ping:
            self._next_ping = now + self.watchdog_interval
            self.send("WATCHDOG=1")


def _children() -> list[int]:
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as children:
            return [int(pid) for pid in children.read().split()]
    except OSError:
        return []
