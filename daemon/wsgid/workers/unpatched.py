"""The standard library's own I/O and thread primitives, as they were before any app ran.

Owns: the names the sync and gthread workers call through, bound when this module is
imported, and `threads_replaced()`. The worker modules import it, and the master imports
them (to resolve `worker_class`) before it or a worker loads the application. So an app
that monkey-patches the standard library at import, as `gevent.monkey.patch_all()` does,
cannot change them under the loop. patch_all deletes `select.epoll`, and swaps
`select.poll`, `socket.socket`, `socket.socketpair` and `queue.SimpleQueue` for cooperative
versions: they wait by running gevent's event loop, which the workers' epoll loop is not,
and cost more per call. The app itself keeps the patched versions.

What cannot be undone this way is a patched thread start: the threads a worker would start
afterwards would be greenlets, which run only while something waits in gevent's loop. The
gthread worker refuses such an app (`threads_replaced`); the sync worker starts no thread.
`OS_READ` and `OS_WRITE` are for wsgid's own pipes and files in every worker (the wake-up
pipe, the logs, the boot report, `--daemon`'s readiness pipe): `eventlet.monkey_patch()`
replaces `os.read` and `os.write` with versions that wait in its hub before each call (and
retry a write that gets EPIPE for ever), which neither the loop, nor a real thread of
wsgid's, nor a pipe nobody reads any more, may do.

The signal functions patch_all swaps keep their behaviour for every signal but SIGCHLD,
which a worker leaves at its default, and the rest of what it swaps (time.sleep, selectors,
subprocess, os.fork and os.waitpid) the workers do not call.
"""

from __future__ import annotations

import _queue
import _thread
import os
import select
import socket
from collections.abc import Callable
from typing import Any, Final

EPOLL: Final = select.epoll
POLL: Final = select.poll
SOCKET: Final = socket.socket
SOCKETPAIR: Final = socket.socketpair
SIMPLE_QUEUE: Final = _queue.SimpleQueue  # queue.SimpleQueue is this C class
OS_READ: Final = os.read
OS_WRITE: Final = os.write
_START_NEW_THREAD: Final = _thread.start_new_thread


def start_thread(function: Callable[..., object], args: tuple[Any, ...]) -> int:
    """Start a real thread, whatever replaced thread starts (a gevent worker's threads are
    greenlets); its ident."""
    return _START_NEW_THREAD(function, args)


def threads_replaced() -> bool:
    """Whether something (an app's monkey-patching) replaced how a new thread starts."""
    return _thread.start_new_thread is not _START_NEW_THREAD
