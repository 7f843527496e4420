"""Line sinks: where a rendered record is written (a standard stream or a file).

Owns: the file descriptors of the logs, and what happens when a write fails.
A record is written with one `os.write` of the whole line, so lines from the
master, the workers and threads never interleave (`O_APPEND` writes are
atomic for regular files, and pipe writes up to PIPE_BUF are).

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
server down. Nor does it cut a record or lose one unnoticed (a full disk,
a quota, a pipe nobody reads):

- A write that took only part of a batch (the disk filled up in the middle)
  leaves the records it took, finishes the record it cut at once if the
  target takes the rest, and otherwise takes that record's first part back
  out of a regular file (ftruncate, after checking with pread that the end
  of the file is still those bytes) so the file ends with a whole line; a
  stream cannot take bytes back, so there the rest of the record is written
  first, before anything else. Records not written are kept, in order, up
  to HOLD_LIMIT bytes, and written before the next ones; records past that
  are dropped whole and counted.
- Failures are reported through `report` (set by `Logs`: an error event on
  the error log, or stderr), at most once per REPORT_INTERVAL per process,
  with the error and how many records were dropped since the last report.
  `flush()` (a worker exits, the logs are replaced, or at exit for the
  master) writes what it can and reports the rest.

A sink takes a lock around its writes (threads of a gthread worker write
the error log at once); a forked child gets a fresh one (see the end of the
module), so a fork cannot inherit it held.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import stat
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Protocol

from wsgid.workers import unpatched

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

HOLD_LIMIT = 64 * 1024  # bytes of records a sink keeps while its target takes none
REPORT_INTERVAL = 10.0  # seconds between two reports of write failures by one sink

# (target, error, records dropped since the last report, records still kept)
Report = Callable[[str, str, int, int], None]


class Sink(Protocol):
    def write(self, record: str, severity: int) -> None: ...
    def write_many(self, records: list[str], severity: int) -> None: ...
    def flush(self) -> None: ...
    def reopen(self) -> str | None: ...
    def close(self) -> None: ...
    def isatty(self) -> bool: ...
    def fileno(self) -> int | None: ...


def encode(record: str) -> bytes:
    # Lone surrogates (undecodable bytes an app kept with surrogateescape)
    # cannot be UTF-8 encoded; keep them visible instead of failing.
    return (record + "\n").encode("utf-8", "backslashreplace")


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc)


class _FdSink:
    """Records to a file descriptor: one write per record, or per batch."""

    fd: int
    target = "-"  # what reports name: the path, or stdout/stderr
    report: Report | None = None
    # A write to a pipe or socket larger than PIPE_BUF may be interleaved with
    # another process's writes; batches to those are cut at record boundaries.
    _chunk: int = 0
    _regular = False

    def _kind(self) -> None:
        try:
            regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            regular = False
        self._regular = regular
        self._chunk = 0 if regular else select.PIPE_BUF
        self._reset()
        _fd_sinks.add(self)

    def _reset(self) -> None:
        """No trouble yet (a new sink, or a forked child: the parent's records are its own)."""
        self._lock = threading.Lock()
        self._troubled = False  # something below is set: writes take the careful path
        self._held: list[bytes] = []  # whole records not written yet, in order
        self._held_size = 0
        self._tail = b""  # the rest of a record a stream took only part of
        self._failures = 0  # failed writes since the last report
        self._lost = 0  # records dropped since the last report
        self._error = ""
        self._next_report = 0.0

    @property
    def failing(self) -> bool:
        """Whether records are waiting for the target (it is failing now)."""
        return bool(self._held or self._tail)

    def write(self, record: str, severity: int = INFO) -> None:
        self._put([record], encode(record))

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        if not records:
            return
        data = encode("\n".join(records))
        limit = self._chunk
        if not limit or len(data) <= limit:
            self._put(records, data)  # O_APPEND: atomic whatever the size
            return
        chunk: list[str] = []
        size = 0
        for record in records:
            line = len(encode(record))
            if chunk and size + line > limit:
                self._put(chunk, encode("\n".join(chunk)))
                chunk, size = [], 0
            chunk.append(record)
            size += line
        self._put(chunk, encode("\n".join(chunk)))

    def _put(self, records: list[str], data: bytes) -> None:
        """Write `data` (the encoded `records`), or keep and count what cannot be written."""
        with self._lock:
            if not self._troubled:
                try:
                    written = unpatched.OS_WRITE(self.fd, data)
                except OSError as exc:
                    written, self._error = 0, _reason(exc)
                if written == len(data):
                    return  # the usual case: nothing else to do
                self._troubled = True
                self._failures += 1
                self._settle([encode(r) for r in records], written)
            else:
                # What was kept goes first; the new records behind it, tried now only
                # if the target took all of it.
                drained = self._drain()
                self._hold([encode(r) for r in records])
                if drained:
                    self._drain()
            due = self._due(time.monotonic())
        if due is not None and self.report is not None:
            self.report(self.target, *due)

    def _settle(self, lines: list[bytes], written: int) -> None:
        """After a write took `written` bytes of `lines`: keep what it did not take.

        A record cut in the middle is finished now if the target takes its rest;
        else its first part is taken back out of a regular file (it stays kept,
        whole), or its rest goes out first, before anything else, to a stream.
        """
        taken = 0
        while taken < len(lines) and written >= len(lines[taken]):
            written -= len(lines[taken])
            taken += 1
        rest = lines[taken:]
        if written:
            line = rest[0]
            done = written + self._finish(line[written:])
            if done == len(line):
                rest = rest[1:]
            elif not (self._regular and self._take_back(line[:done])):
                self._tail = line[done:]
                rest = rest[1:]
        self._hold(rest)

    def _finish(self, data: bytes) -> int:
        """Write as much of `data` as the target takes now; how much it took."""
        done = 0
        while done < len(data):
            try:
                n = unpatched.OS_WRITE(self.fd, data[done:])
            except OSError as exc:
                self._error = _reason(exc)
                break
            if n <= 0:
                break
            done += n
        return done

    def _take_back(self, prefix: bytes) -> bool:
        """Cut `prefix` off the end of the file, if the file still ends with it."""
        try:
            end = os.fstat(self.fd).st_size
            start = end - len(prefix)
            if start < 0 or os.pread(self.fd, len(prefix), start) != prefix:
                return False  # another writer appended since, or the fd is write-only
            os.ftruncate(self.fd, start)
        except OSError:
            return False
        return True

    def _hold(self, lines: list[bytes]) -> None:
        for line in lines:
            if self._held_size + len(line) > HOLD_LIMIT:
                self._lost += 1
            else:
                self._held.append(line)
                self._held_size += len(line)

    def _drain(self) -> bool:
        """Write the rest of a cut record, then the kept records; True if all went out."""
        if self._tail:
            self._tail = self._tail[self._finish(self._tail) :]
            if self._tail:
                self._failures += 1
                return False
        while self._held:
            # All at once to a file; to a stream, in writes of at most PIPE_BUF.
            count, size = 1, len(self._held[0])
            while count < len(self._held) and (
                not self._chunk or size + len(self._held[count]) <= self._chunk
            ):
                size += len(self._held[count])
                count += 1
            lines = self._held[:count]
            rest = self._held[count:]
            self._held, self._held_size = [], 0
            data = b"".join(lines)
            try:
                written = unpatched.OS_WRITE(self.fd, data)
            except OSError as exc:
                written, self._error = 0, _reason(exc)
            if written < len(data):
                self._failures += 1
                self._settle(lines, written)
                self._hold(rest)
                return False
            self._hold(rest)
        return True

    def _due(self, now: float, force: bool = False) -> tuple[str, int, int] | None:
        """(error, dropped, kept) if a report is due now; clears the counts it reports."""
        if not (self._failures or self._lost):
            self._troubled = bool(self._held or self._tail)
            return None
        kept = len(self._held) + (1 if self._tail else 0)
        if not (self._lost or kept):
            # The target took every record back (the disk has room again): the failures
            # since the last report cost nothing, and a report would say nothing.
            self._failures = 0
            self._error = ""
            self._troubled = False
            return None
        if not force and now < self._next_report:
            return None
        due = (self._error or "short write", self._lost, kept)
        self._failures = self._lost = 0
        self._error = ""
        self._next_report = now + REPORT_INTERVAL
        self._troubled = bool(self._held or self._tail)
        return due

    def flush(self) -> None:
        """Last chance (exit, replaced logs): write what was kept, report what was not."""
        with self._lock:
            if not self._troubled:
                return
            self._drain()
            kept = len(self._held) + (1 if self._tail else 0)
            self._lost += kept
            self._held, self._held_size, self._tail = [], 0, b""
            due = self._due(time.monotonic(), force=True)
        if due is not None and self.report is not None:
            self.report(self.target, *due)

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

    def __init__(self, std_fd: int) -> None:
        try:
            self.fd = os.dup(std_fd)  # non-inheritable by default
        except OSError:
            self.fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self._kind()


class JournalSink(StreamSink):
    """`-` when it is systemd's journal (`JOURNAL_STREAM` names it): each record begins with
    its syslog priority, `<3>`, which journald takes for the entry's PRIORITY and strips, so
    `journalctl -p err` finds the errors (a record's later lines, a traceback's, are entries
    of their own, at the default priority)."""

    def write(self, record: str, severity: int = INFO) -> None:
        super().write(f"<{severity}>{record}", severity)

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        super().write_many([f"<{severity}>{record}" for record in records], severity)


def is_journal(fd: int, environ: Mapping[str, str]) -> bool:
    """Whether `fd` is the journal stream systemd connected the service's output to."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


class FileSink(_FdSink):
    """A file path, appended to, reopened on USR1."""

    def __init__(self, path: str, owner: tuple[int, int] | None = None) -> None:
        self.path = self.target = path
        self.owner = owner
        self.fd = self._open()
        self._kind()  # a FIFO or /dev/stdout may be named as a "file"

    def _open(self) -> int:
        # Read access too, for a regular file: a record cut by a full disk is
        # checked with pread before it is taken back out (see `_take_back`).
        try:
            readable = stat.S_ISREG(os.stat(self.path).st_mode)
        except FileNotFoundError:
            readable = True
        except OSError:
            readable = False
        flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_RDWR if readable else os.O_WRONLY
        try:
            fd = os.open(self.path, flags | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            try:
                return os.open(self.path, flags, FILE_MODE)
            except PermissionError:
                if not readable:
                    raise
                return os.open(self.path, flags & ~os.O_RDWR | os.O_WRONLY, FILE_MODE)
        if self.owner is not None and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.fchown(fd, *self.owner)
        return fd

    def reopen(self) -> str | None:
        """Open the path again (logrotate moved it); a reason if that failed.

        Only a regular file is rotated: `/dev/stdout` (a pipe, a terminal) or a FIFO named as
        the log is kept as it is, since opening it again could only fail (a worker that
        became `user` may not open its master's pipe) or give the same thing."""
        if not self._regular:
            return None
        try:
            new = self._open()
        except OSError as exc:
            return f"{self.path}: {exc.strerror or exc}"
        try:
            with self._lock:
                if self._tail:
                    # The record's first part stays in the old file: it is lost.
                    self._tail, self._lost, self._troubled = b"", self._lost + 1, True
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


_fd_sinks: weakref.WeakSet[_FdSink] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for sink in list(_fd_sinks):
        sink._reset()  # a fresh lock; the parent's kept records are the parent's to write


os.register_at_fork(after_in_child=_reset_after_fork)


def _flush_all() -> None:
    """A process that exits normally (the master) reports what its sinks kept back.

    Workers leave with os._exit, after `Logs.flush()`; this is for the rest.
    """
    for sink in list(_fd_sinks):
        sink.flush()


atexit.register(_flush_all)
