"""Line sinks: where a rendered record is written (a standard stream or a file).

Owns: the file descriptors of the logs. A record is written with one
`os.write` of the whole line, so lines from the master, the workers and
threads never interleave (`O_APPEND` writes are atomic for regular files,
and pipe writes up to PIPE_BUF are) and no lock is needed, which also means
no lock a fork could inherit in a held state.

- `StreamSink` (`-`) writes to its own duplicate of stdout or stderr, taken
  when the logs are set up: `capture_output` later points fds 1 and 2 at a
  pipe, and the log must not write into its own capture.
- `FileSink` opens with O_APPEND|O_CREAT, mode 0640 (never world-readable),
  and is opened by the master before anything drops privileges; when `user`
  or `group` are set and we are root, a file we create is given to them, so
  workers can reopen it. `reopen()` (USR1, after logrotate moved the file)
  opens the path again and `dup2`s the new file onto the old descriptor:
  the descriptor number never changes, so a write in another thread lands in
  the old file or the new one, never in a closed descriptor.

Buffering (the access log only, `buffered=True`): records are collected and
written together when the worker's loop finishes a turn (`flush()`), when
64 KiB are pending, and before a reopen, a close or the worker's exit. Under
load one turn answers many requests, so this saves a write(2) per request;
a record is never held past the turn that produced it. (nginx's
`access_log ... buffer=` makes the same trade, with a timer instead.) A
worker killed with SIGKILL loses at most the records of its current turn.
The error log is never buffered: a traceback must be on disk before anything
else can go wrong.

Writing never raises: a full disk or a closed stream must not take the
server down.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Protocol

# Syslog severities (RFC 5424 §6.2.1) for structlog method names; sinks that
# do not care ignore them.
SEVERITY = {
    "debug": 7,
    "info": 6,
    "msg": 6,
    "log": 6,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
    "fatal": 2,
}
INFO = 6

FILE_MODE = 0o640
FLUSH_AT = 65536  # pending bytes that trigger a write without waiting for the loop


class Sink(Protocol):
    def write(self, record: str, severity: int) -> None: ...
    def flush(self) -> None: ...
    def reopen(self) -> str | None: ...
    def close(self) -> None: ...
    def isatty(self) -> bool: ...
    def fileno(self) -> int | None: ...


def write_all(fd: int, data: bytes) -> None:
    """Write `data` to `fd`, finishing partial writes; give up quietly on errors."""
    try:
        written = os.write(fd, data)
        while written < len(data):
            data = data[written:]
            written = os.write(fd, data)
    except OSError:
        pass  # ENOSPC, EPIPE, EAGAIN on a non-blocking pipe: drop, keep serving


def encode(record: str) -> bytes:
    # Lone surrogates (undecodable bytes an app kept with surrogateescape)
    # cannot be UTF-8 encoded; keep them visible instead of failing.
    return (record + "\n").encode("utf-8", "backslashreplace")


_buffered_sinks: weakref.WeakSet[_FdSink] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    # A thread of the parent may have held a lock at fork; the child starts clean.
    for sink in list(_buffered_sinks):
        sink._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


class _FdSink:
    """Records to a file descriptor, each with one write, or buffered (see above)."""

    fd: int

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered
        self._pending: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        if buffered:
            _buffered_sinks.add(self)

    def write(self, record: str, severity: int = INFO) -> None:
        data = encode(record)
        if not self.buffered:
            write_all(self.fd, data)
            return
        with self._lock:  # gthread: pool threads append while the loop flushes
            self._pending.append(data)
            self._size += len(data)
            if self._size < FLUSH_AT:
                return
            pending, self._pending, self._size = self._pending, [], 0
        write_all(self.fd, b"".join(pending))

    def flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            pending, self._pending, self._size = self._pending, [], 0
        if pending:
            write_all(self.fd, b"".join(pending))

    def reopen(self) -> str | None:
        return None

    def close(self) -> None:
        self.flush()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def isatty(self) -> bool:
        try:
            return os.isatty(self.fd)
        except OSError:
            return False

    def fileno(self) -> int | None:
        return self.fd


class StreamSink(_FdSink):
    """`-`: standard output or standard error, through a private duplicate."""

    def __init__(self, std_fd: int, buffered: bool = False) -> None:
        super().__init__(buffered)
        try:
            self.fd = os.dup(std_fd)  # non-inheritable by default
        except OSError:
            self.fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


class FileSink(_FdSink):
    """A file path, appended to, reopened on USR1."""

    def __init__(
        self, path: str, owner: tuple[int, int] | None = None, buffered: bool = False
    ) -> None:
        super().__init__(buffered)
        self.path = path
        self.owner = owner
        self.fd = self._open()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return os.open(self.path, flags, FILE_MODE)
        if self.owner is not None and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.fchown(fd, *self.owner)
        return fd

    def reopen(self) -> str | None:
        """Open the path again (logrotate moved it); a reason if that failed."""
        self.flush()  # what was logged before the signal belongs in the old file
        try:
            new = self._open()
        except OSError as exc:
            return f"{self.path}: {exc.strerror or exc}"
        try:
            os.dup2(new, self.fd, inheritable=False)
        except OSError as exc:
            return f"{self.path}: {exc.strerror or exc}"
        finally:
            os.close(new)
        return None

    def isatty(self) -> bool:
        return False


class MultiSink:
    """Several sinks fed the same records (a file plus syslog, gunicorn's `--log-syslog`)."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def write(self, record: str, severity: int = INFO) -> None:
        for sink in self.sinks:
            sink.write(record, severity)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def reopen(self) -> str | None:
        problems = [p for p in (s.reopen() for s in self.sinks) if p]
        return "; ".join(problems) or None

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def isatty(self) -> bool:
        # Colour only if every destination is a terminal (never into syslog).
        return all(s.isatty() for s in self.sinks)

    def fileno(self) -> int | None:
        return None
