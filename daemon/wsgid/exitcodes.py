"""The exit statuses of wsgid's processes: one home for every code.

Owns: `ExitCode`. The command (`wsgid`, `wsgid check`, `wsgid --daemon`) and the master exit
with these, and docs/running.md lists them for operators (a test checks the table against this
enum). `WORKER_ABORTED` is a worker's own status, read only by its master.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # stopped cleanly
    ERROR = 1  # an unexpected runtime error: a bug
    CONFIG = 2  # a configuration or usage error
    BOOT_FAILED = 3  # a worker exited before booting, other than by failing to load the app
    APP_LOAD_FAILED = 4  # the application could not be loaded
    LISTEN_FAILED = 5  # a listener could not be bound
    WORKER_ABORTED = 6  # a worker killed itself after its timeout dump (never the master's)
    PIDFILE = 7  # the pidfile cannot be created, or another instance holds it


# The codes a worker exits with that its master reads, never passed on to an operator.
WORKER_ONLY = frozenset({ExitCode.WORKER_ABORTED})
