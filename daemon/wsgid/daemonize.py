"""`--daemon` (`-D`, `daemon = true`): detach from the terminal, report readiness.

Owns: turning the starting process into a background daemon with
python-daemon's `DaemonContext`, and the channel over which the daemon tells
the process that started it whether it came up. The command that launched
`wsgid -D` exits only once the daemon is ready (0) or has failed (the
daemon's exit code, with the error printed on the terminal), so a script can
trust the exit status, as with `systemctl start` of a `Type=notify` unit.

Theory of operation:

    original ──fork──► child ──setsid, fork──► daemon (becomes the master)
       │                 └─ exits at once
       └─ reads the readiness pipe until "ready" / "failed" / EOF, then exits

The two forks with `setsid` between them are the classic detach: the daemon
leads no session, so it can never reacquire a controlling terminal. They are
done here rather than by `DaemonContext(detach_process=True)` because its
first parent exits at once with status 0, and ours has to wait.

While the daemon has not reported, everything written to its `sys.stderr`
(the error log when `errorlog = "-"`, in the master and in the first
generation of workers) is also copied into the pipe; the original prints
those lines only if the start fails, so the user sees the loader's error
rather than a bare exit status. Once ready, the copy stops and the daemon's
standard streams are what they were made by the detach: stdin is /dev/null;
stdout and stderr are kept when they are files, sockets or /dev/null (so
`wsgid -D ... 2>>wsgid.log` keeps working), and replaced by /dev/null when
they are a terminal or a pipe (a pipe kept open would make `$(wsgid -D ...)`
or a test harness reading it wait forever).

What daemonizing keeps, unlike a textbook daemon: the working directory (the
`chdir` setting and relative paths in the configuration mean the same as in
the foreground), core dumps (the limit is left alone), and signal handlers
(the master installs its own). The `umask` setting is applied (default 0, as
gunicorn does). Inherited sockets (`fd://N` binds, `LISTEN_FDS`) stay open.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import os
import stat
import sys
from typing import IO, Any

EXIT_NOT_READY = 1


class Readiness:
    """The daemon's end of the readiness pipe; report once, then it is closed."""

    def __init__(self, fd: int, tee: _BootTee) -> None:
        self._fd = fd
        self._tee = tee

    @property
    def pending(self) -> bool:
        """True until ready() or failed() was called."""
        return self._fd >= 0

    def ready(self) -> None:
        """The server answers: let the launching command exit 0."""
        self._finish({"ready": os.getpid()})

    def failed(self, code: int, message: str) -> None:
        """The start failed: the launching command prints `message` and exits `code`."""
        self._finish({"failed": code or EXIT_NOT_READY, "message": message})

    def _finish(self, record: dict[str, Any]) -> None:
        if self._fd < 0:
            return
        self._tee.stop()
        _send(self._fd, record)
        os.close(self._fd)
        self._fd = -1


class _BootTee(io.TextIOBase):
    """`sys.stderr` while booting: writes go to the real stream and, as lines, to the pipe.

    Forked workers inherit it (and the pipe); after the original process has
    gone, their first write gets EPIPE and the copy stops there too.
    """

    def __init__(self, stream: IO[str], fd: int) -> None:
        super().__init__()
        self._stream = stream
        self._fd = fd
        self._partial = ""

    def stop(self) -> None:
        self._fd = -1

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if self._fd >= 0:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                if not _send(self._fd, {"log": line}):
                    self._fd = -1  # the reader has gone: stop copying (no close: not ours alone)
                    break
        return written

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", "utf-8"))

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)


def _send(fd: int, record: dict[str, Any]) -> bool:
    """Write one JSON line; False once nobody reads. One write() call: lines from
    the master and its workers never interleave (up to PIPE_BUF bytes)."""
    data = (json.dumps(record) + "\n").encode()
    try:
        os.write(fd, data)
    except BlockingIOError:
        return True  # the reader is slow: drop this line rather than stall the server
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EBADF):
            return False
        raise
    return True


def detach(settings: Any) -> Readiness:
    """Become a daemon; returns in the daemon only.

    In the starting process this waits for the daemon's report and raises
    SystemExit with the exit status for the command line.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    starter = os.getpid()
    child = os.fork()
    if child:
        os.close(write_fd)
        _reap(child)
        raise SystemExit(_wait_for_report(read_fd))
    os.close(read_fd)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)  # the session leader goes; the daemon can never get a terminal
        os.set_blocking(write_fd, False)
        _enter_daemon_context(settings, write_fd, starter)
    except BaseException as exc:
        _send(write_fd, {"failed": EXIT_NOT_READY, "message": f"cannot daemonize: {exc}"})
        os._exit(EXIT_NOT_READY)
    tee = _BootTee(sys.stderr, write_fd)
    sys.stderr = tee
    return Readiness(write_fd, tee)


def _enter_daemon_context(settings: Any, write_fd: int, starter: int) -> None:
    preserve = [write_fd, *_inherited_fds(settings, starter)]
    # python-daemon's import name is `daemon`, which is also the name of this project's
    # source root; import_module keeps mypy (mypy_path=daemon) from resolving it there.
    python_daemon = importlib.import_module("daemon")
    context = python_daemon.DaemonContext(
        working_directory=os.getcwd(),
        umask=int(settings.umask),
        prevent_core=False,
        detach_process=False,  # done by detach(), so that the starter can wait
        files_preserve=preserve,
        stdin=None,
        stdout=_kept(sys.stdout),
        stderr=_kept(sys.stderr),
        signal_map={},
    )
    context.open()
    if os.environ.get("LISTEN_PID") == str(starter):
        # systemd passed sockets to the starter; they are ours now (sd_listen_fds checks the pid).
        os.environ["LISTEN_PID"] = str(os.getpid())


def _inherited_fds(settings: Any, starter: int) -> list[int]:
    """Descriptors the daemon must keep: `fd://N` binds and systemd's LISTEN_FDS."""
    fds = []
    for entry in settings.bind:
        if entry.startswith("fd://") and entry[5:].isdigit():
            fds.append(int(entry[5:]))
    count = os.environ.get("LISTEN_FDS", "")
    if os.environ.get("LISTEN_PID") == str(starter) and count.isdigit():
        fds.extend(range(3, 3 + int(count)))
    return fds


def _kept(stream: IO[str]) -> IO[str] | None:
    """`stream` if the daemon may keep writing to it, else None (/dev/null)."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if stat.S_ISREG(mode) or stat.S_ISSOCK(mode):
        return stream
    if stat.S_ISCHR(mode) and not os.isatty(stream.fileno()):
        return stream  # /dev/null and friends
    return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _wait_for_report(fd: int) -> int:
    """In the starting process: the daemon's verdict as an exit status."""
    lines: list[str] = []
    try:
        with os.fdopen(fd, "rb") as pipe:
            for raw in pipe:
                record = _parse(raw)
                if record is None:
                    continue
                if "log" in record:
                    lines.append(str(record["log"]))
                elif "ready" in record:
                    return 0
                elif "failed" in record:
                    _print_failure(lines, str(record.get("message", "")))
                    code = record["failed"]
                    return code if isinstance(code, int) and code > 0 else EXIT_NOT_READY
    except KeyboardInterrupt:
        print("wsgid: stopped waiting; the daemon goes on starting", file=sys.stderr)
        return 130
    _print_failure(lines, "the daemon exited before it was ready")
    return EXIT_NOT_READY


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _print_failure(lines: list[str], message: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)
    if message:
        print(f"wsgid: {message}", file=sys.stderr)
    sys.stderr.flush()
