"""What must stay interpreted in the compiled worker loop: a call that runs signal handlers.

Python runs a signal handler between two bytecode instructions of the main thread. The loop
compiled by mypyc executes none: a TERM that arrives while the loop is working (not while it
waits in epoll, which runs the handlers when a signal interrupts it) would wait for some
interpreted code to run, and a worker with nothing interpreted on its idle path would never
stop. The signal's wake-up byte ends the loop's next wait; the loop then calls
`run_signal_handlers`, and entering it lets the interpreter run the pending handlers.
This module is never compiled (setup.py's HOT list leaves it out on purpose).
"""

from __future__ import annotations


def run_signal_handlers() -> None:
    """Return at once: entering this interpreted function runs the pending signal handlers."""
