"""Text written by the application, turned into error-log events.

Owns: `wsgi.errors` and `capture_output`. Neither may write raw text into
the error log: a `print()` or a Flask error line in the middle of JSON lines
would break every consumer. Both go through `LineEvents`, which cuts text into
lines and logs each line as one event (`event=wsgi.errors` or
`event=app.output stream=stdout|stderr`, the line under `message`).

`capture_output` points file descriptors 1 and 2 at pipes whose other ends a
daemon thread of the same process reads (a real thread, also in a gevent
worker), so the events carry the pid of the process that printed. Each
process runs its own capture: a forked child first gets the original
stdout/stderr back (so a re-executed master on USR2 does not inherit a pipe
nobody reads), then the worker starts a capture of its own
(`Logs.enter_worker`).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from wsgid.workers import unpatched

MAX_LINE = 65536  # a longer "line" is logged in pieces of this size
# How long an exiting process waits for its capture to log what the pipes hold.
DRAIN_SECONDS = 2.0

Emit = Callable[[str], None]


class LineEvents:
    """Cuts written text into lines; each complete line is passed to `emit`.

    Buffers are per thread, so threads of a gthread worker writing at once do
    not splice their halves of lines together.
    """

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._local = threading.local()

    def feed(self, text: str) -> None:
        pending = getattr(self._local, "pending", "") + text
        while True:
            end = pending.find("\n")
            if end < 0:
                break
            line, pending = pending[:end], pending[end + 1 :]
            self._emit(line.rstrip("\r"))
        while len(pending) >= MAX_LINE:
            self._emit(pending[:MAX_LINE])
            pending = pending[MAX_LINE:]
        self._local.pending = pending

    def flush(self) -> None:
        pending = getattr(self._local, "pending", "")
        if pending:
            self._local.pending = ""
            self._emit(pending)


class ErrorsStream(io.TextIOBase):
    """`wsgi.errors`: a text stream whose lines become error-log events."""

    def __init__(self, emit: Emit) -> None:
        super().__init__()
        self._lines = LineEvents(emit)

    def write(self, text: str) -> int:
        self._lines.feed(str(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._lines.flush()

    def writable(self) -> bool:
        return True


# Duplicates of the stdout/stderr the process started with, taken before the
# first capture: what `-` sinks write to and what forked children get back.
_originals: tuple[int, int] | None = None
_active: OutputCapture | None = None


def original(fd: int) -> int:
    """The descriptor standing for the original stdout (1) or stderr (2)."""
    return _originals[fd - 1] if _originals is not None else fd


def original_stream(fd: int) -> IO[str]:
    """A line-buffered text stream on the original stdout (1) or stderr (2), for writers that
    must not be captured (the user's logging handlers on sys.stdout: `stdlib.write_past`)."""
    return open(
        original(fd), "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
    )


class OutputCapture:
    """Redirects fds 1 and 2 of this process into events (`capture_output`)."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._owner = 0  # pid of the process whose thread reads the pipes
        self._readers: list[int] = []
        # A pipe whose write end the thread closes when it has logged everything.
        self._done = -1
        self._done_w = -1

    def start(self) -> None:
        """Capture this process's stdout and stderr from now on."""
        global _originals, _active
        if _originals is None:
            _originals = (os.dup(1), os.dup(2))
        if _active is not None and _active is not self:
            _active._readers = []  # its thread sees EOF once fds 1 and 2 move on
        _active = self
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        pumps = []
        bound = self._log.bind(pid=os.getpid())
        for fd, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)  # stays inheritable: it is the child's stdout/stderr
            os.close(write_end)
            log = bound.info if name == "stdout" else bound.error
            pumps.append((read_end, LineEvents(_output_emitter(log, name))))
            self._readers.append(read_end)
        self._owner = os.getpid()
        self._done, self._done_w = os.pipe()
        if unpatched.threads_replaced():
            # A gevent worker: a greenlet would run only while the hub does, and an app
            # writing more than a pipe holds without waiting in it would block for good.
            unpatched.start_thread(_pump, (pumps, self._done_w))
            return
        thread = threading.Thread(
            target=_pump, args=(pumps, self._done_w), name="wsgid-capture", daemon=True
        )
        thread.start()

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Before this process exits: log what the pipes still hold, a last line without
        its newline included. stdout and stderr go back to the originals, which ends the
        pipes (unless a child process of the app still holds them: then it is waited for
        `timeout` seconds at most), and the thread logs the rest and ends."""
        if self._owner != os.getpid() or _originals is None or self._done < 0:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        for fd, saved in zip((1, 2), _originals, strict=True):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        self._owner = 0
        poller = unpatched.POLL()
        poller.register(self._done, select.POLLIN)
        with contextlib.suppress(OSError):
            poller.poll(int(timeout * 1000))
        os.close(self._done)
        self._done = self._done_w = -1  # (the thread closed its end)


def _restore_in_child() -> None:
    """After fork: the child's stdout/stderr are the originals again, not our pipes."""
    capture = _active
    if capture is None or not capture._owner or _originals is None:
        return
    for fd, saved in zip((1, 2), _originals, strict=True):
        with contextlib.suppress(OSError):
            os.dup2(saved, fd)
    for fd in (*capture._readers, capture._done, capture._done_w):
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    capture._readers = []
    capture._done = capture._done_w = -1
    capture._owner = 0


os.register_at_fork(after_in_child=_restore_in_child)


def _output_emitter(log: Callable[..., Any], stream: str) -> Emit:
    def emit(line: str) -> None:
        log("app.output", stream=stream, message=line)

    return emit


def _pump(pumps: list[tuple[int, LineEvents]], done: int) -> None:
    """The capture thread: read the pipes, log complete lines, until they close; then close
    `done`, for `OutputCapture.drain` to know."""
    try:
        _read_lines(pumps)
    finally:
        os.close(done)


def _read_lines(pumps: list[tuple[int, LineEvents]]) -> None:
    poller = unpatched.POLL()  # in a thread of its own, also in a gevent worker
    by_fd = {fd: lines for fd, lines in pumps}
    # Incremental: a UTF-8 character split across two reads still decodes;
    # bytes that are not UTF-8 stay visible as \xHH.
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("backslashreplace") for fd in by_fd}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while by_fd:
        for fd, _ in poller.poll():
            lines = by_fd.get(fd)
            if lines is None:
                continue
            try:
                data = unpatched.OS_READ(fd, 65536)
            except OSError:
                data = b""
            if not data:
                lines.feed(decoders[fd].decode(b"", final=True))
                lines.flush()
                poller.unregister(fd)
                del by_fd[fd]
                continue
            lines.feed(decoders[fd].decode(data))
