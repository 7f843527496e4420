"""Whether another process still runs, by its pid.

Owns: the one liveness check of the master (is the old master of an upgrade gone?) and of the
systemd notifier (did the new master take over?): an exited child that is not reaped yet (a
zombie) counts as gone, which `kill(pid, 0)` alone would not tell.
"""

from __future__ import annotations

import os


def running(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        # /proc unreadable (hidepid): only existence can be told.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
