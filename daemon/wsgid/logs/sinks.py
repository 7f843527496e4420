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

`write_many` writes a batch of records with one write(2): the access log
hands over the records of a whole turn of the worker's loop at once (see
access.py); nginx's `access_log ... buffer=` makes the same trade. The error
log writes each event as it happens: a traceback must be on disk before
anything else can go wrong.

Writing never raises: a full disk or a closed stream must not take the
server down.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
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


class Sink(Protocol):
    def write(self, record: str, severity: int) -> None: ...
    def write_many(self, records: list[str], severity: int) -> None: ...
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


class _FdSink:
    """Records to a file descriptor: one write per record, or per batch."""

    fd: int
    # A write to a pipe or socket larger than PIPE_BUF may be interleaved with
    # another process's writes; batches to those are cut at record boundaries.
    _chunk: int = 0

    def _kind(self) -> None:
        try:
            regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            regular = False
        self._chunk = 0 if regular else select.PIPE_BUF

    def write(self, record: str, severity: int = INFO) -> None:
        write_all(self.fd, encode(record))

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        if not records:
            return
        data = encode("\n".join(records))
        limit = self._chunk
        if not limit or len(data) <= limit:
            write_all(self.fd, data)  # O_APPEND: atomic whatever the size
            return
        chunk: list[bytes] = []
        size = 0
        for record in records:
            line = encode(record)
            if chunk and size + len(line) > limit:
                write_all(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        write_all(self.fd, b"".join(chunk))

    def reopen(self) -> str | None:
        return None

    def close(self) -> None:
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

    def __init__(self, std_fd: int) -> None:
        try:
            self.fd = os.dup(std_fd)  # non-inheritable by default
        except OSError:
            self.fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self._kind()


class FileSink(_FdSink):
    """A file path, appended to, reopened on USR1."""

    def __init__(self, path: str, owner: tuple[int, int] | None = None) -> None:
        self.path = path
        self.owner = owner
        self.fd = self._open()
        self._kind()  # a FIFO or /dev/stdout may be named as a "file"

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

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        for sink in self.sinks:
            sink.write_many(records, severity)

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
