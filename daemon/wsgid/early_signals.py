"""Stop signals that reach a wsgid running as PID 1 before the master's own handlers.

Owns: `hold()`, which the command calls first thing, and `release()`, which the master calls
once its handlers are installed. The kernel discards a signal sent to the init of a pid
namespace (a container's PID 1) that has no handler for it: a TERM that arrived while wsgid
read its configuration (a pod deleted as it starts) was lost, and the server ran until the
runtime's SIGKILL. `hold` records TERM and QUIT from the start, and the master acts on
them as on any it receives later. INT is left to Python's own handler (KeyboardInterrupt),
which PID 1 has too, so that Ctrl-C still interrupts `wsgid check` in `docker run -it`.
Anywhere else the default action (ending the process) is what an early stop signal should
do, so nothing is installed.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

# The stop signals whose default action PID 1 does not get: the kernel discards them.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGQUIT)

_held: list[int] = []


def _record(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)


def hold() -> None:
    """As PID 1: record the stop signals from now until the master takes them."""
    if os.getpid() != 1:
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)


def release() -> list[int]:
    """The stop signals recorded so far, oldest first (none unless `hold` installed itself)."""
    taken = list(_held)
    _held.clear()
    return taken
