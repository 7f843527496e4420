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

While the daemon has not reported, the warnings and errors it logs (the
master's, and those of its first generation of workers, such as the
loader's error with its traceback) are also sent through the pipe; the
original prints them only if the start fails, so the user sees why rather
than a bare exit status. This is done on the loggers (`Readiness.tee`), not
on file descriptors, so the logs themselves go exactly where they would
have gone.

The daemon's standard streams: stdin is /dev/null; stdout and stderr are
kept when they are files, sockets or /dev/null (so `wsgid -D ... 2>>log`
keeps working), and replaced by /dev/null when they are a terminal or a pipe
(a pipe kept open would make `$(wsgid -D ...)` or a test harness reading it
wait forever). `enable_stdio_inheritance` (`-R`, gunicorn's) keeps a pipe
too, for `wsgid -D -R 2>&1 | logger`: whoever reads it then waits as long as
the daemon runs. A terminal is never kept: the daemon has left it.

What daemonizing keeps, unlike a textbook daemon: the working directory (the
`chdir` setting and relative paths in the configuration mean the same as in
the foreground), core dumps (the limit is left alone), and signal handlers
(the master installs its own). The umask becomes 022, as gunicorn's daemon's (the `umask`
setting is for the unix socket files wsgid binds, see `wsgid.listeners`). Inherited sockets
(`fd://N` binds, `LISTEN_FDS`) stay open.
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
import time
import traceback
from typing import IO, TYPE_CHECKING, Any

from wsgid.exitcodes import ExitCode
from wsgid.logs import escape
from wsgid.workers import unpatched

# The daemon's umask, gunicorn's: files the app creates are not writable by others.
DAEMON_UMASK = 0o022

# What the command that launched `wsgid --daemon` says for each way the daemon did not start.
_START_FAILURES: dict[int, str] = {
    ExitCode.OK: "the server stopped before it was ready",
    ExitCode.CONFIG: "configuration error",
    ExitCode.BOOT_FAILED: "a worker failed to boot",
    ExitCode.APP_LOAD_FAILED: "the application could not be loaded",
    ExitCode.LISTEN_FAILED: "a listener could not be bound",
    ExitCode.PIDFILE: "the pidfile could not be created, or another instance holds it",
}
if TYPE_CHECKING:
    from wsgid.runtime import RuntimeSettings


class Readiness:
    """The daemon's end of the readiness pipe; report once, then it is closed."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def pending(self) -> bool:
        """True until ready() or failed() was called (or the launcher went away)."""
        return self._fd >= 0

    def ready(self) -> None:
        """The server answers: let the launching command exit 0."""
        self._finish({"ready": os.getpid()})

    def failed(self, code: int, message: str) -> None:
        """The start failed: the launching command prints `message` and exits `code`."""
        self._finish({"failed": code or ExitCode.ERROR, "message": message, "pid": os.getpid()})

    def not_started(self, code: int, errorlog: str) -> None:
        """The master exited with `code` before it was ready: say why, in a line."""
        what = _START_FAILURES.get(code, "the server failed to start")
        where = "" if errorlog == "-" else f"; details in the error log {errorlog}"
        self.failed(code, f"{what} (exit status {int(code) or 1}){where}")

    def tee(self, logger: Any) -> Any:
        """`logger`, whose warnings and errors also reach the launcher while this is pending."""
        return _TeeLogger(logger, self)

    def tee_logs(self, logs: Any) -> Any:
        """`logs` (a `wsgid.logs.Logs`) whose error log is tee'd: for a first-generation worker."""
        return _TeeLogs(logs, self)

    def forward(self, line: str) -> None:
        if self._fd >= 0 and not _send(self._fd, {"log": line}):
            self._fd = -1  # the launcher has gone (in a worker: it already exited 0)

    def _finish(self, record: dict[str, Any]) -> None:
        if self._fd < 0:
            return
        _send(self._fd, record)
        os.close(self._fd)
        self._fd = -1


class _TeeLogger:
    """A structlog logger that also forwards warning-and-worse events to the launcher."""

    def __init__(self, logger: Any, readiness: Readiness) -> None:
        self._logger = logger
        self._readiness = readiness

    def bind(self, **values: Any) -> _TeeLogger:
        return _TeeLogger(self._logger.bind(**values), self._readiness)

    def _forward(self, event: str, values: dict[str, Any], tb: str = "") -> None:
        if not self._readiness.pending:
            return
        detail = values.get("error") or values.get("reason") or ""
        line = f"{event}: {detail}" if detail else event
        self._readiness.forward(f"{line}\n{tb.rstrip()}" if tb else line)

    def warning(self, event: str, **values: Any) -> Any:
        self._forward(event, values)
        return self._logger.warning(event, **values)

    def error(self, event: str, **values: Any) -> Any:
        self._forward(event, values)
        return self._logger.error(event, **values)

    def critical(self, event: str, **values: Any) -> Any:
        self._forward(event, values)
        return self._logger.critical(event, **values)

    def exception(self, event: str, **values: Any) -> Any:
        self._forward(event, values, traceback.format_exc())
        return self._logger.exception(event, **values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class _TeeLogs:
    """A `Logs` whose `error` logger is tee'd; everything else is the real one's."""

    def __init__(self, logs: Any, readiness: Readiness) -> None:
        self._logs = logs
        self.error = readiness.tee(logs.error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logs, name)


def _send(fd: int, record: dict[str, Any]) -> bool:
    """Write one JSON line; False once nobody reads. One write() call: lines from
    the master and its workers never interleave (up to PIPE_BUF bytes)."""
    data = (json.dumps(record) + "\n").encode()
    try:
        unpatched.OS_WRITE(fd, data)
    except BlockingIOError:
        return True  # the reader is slow: drop this line rather than stall the server
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EBADF):
            return False
        raise
    return True


def detach(settings: RuntimeSettings) -> Readiness:
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
        _send(write_fd, {"failed": ExitCode.ERROR, "message": f"cannot daemonize: {exc}"})
        os._exit(ExitCode.ERROR)
    return Readiness(write_fd)


def _enter_daemon_context(settings: RuntimeSettings, write_fd: int, starter: int) -> None:
    preserve = [write_fd, *_inherited_fds(settings, starter)]
    # python-daemon's import name is `daemon`, which is also the name of this project's
    # source root; import_module keeps mypy (mypy_path=daemon) from resolving it there.
    python_daemon = importlib.import_module("daemon")
    context = python_daemon.DaemonContext(
        working_directory=os.getcwd(),
        umask=DAEMON_UMASK,
        prevent_core=False,
        detach_process=False,  # done by detach(), so that the starter can wait
        files_preserve=preserve,
        stdin=None,
        stdout=_kept(sys.stdout, settings.enable_stdio_inheritance),
        stderr=_kept(sys.stderr, settings.enable_stdio_inheritance),
        signal_map={},
    )
    context.open()
    if os.environ.get("LISTEN_PID") == str(starter):
        # systemd passed sockets to the starter; they are ours now (sd_listen_fds checks the pid).
        os.environ["LISTEN_PID"] = str(os.getpid())


def _inherited_fds(settings: RuntimeSettings, starter: int) -> list[int]:
    """Descriptors the daemon must keep: `fd://N` binds and systemd's LISTEN_FDS."""
    fds = []
    for entry in settings.bind:
        if entry.startswith("fd://") and entry[5:].isdigit():
            fds.append(int(entry[5:]))
    count = os.environ.get("LISTEN_FDS", "")
    if os.environ.get("LISTEN_PID") == str(starter) and count.isdigit():
        fds.extend(range(3, 3 + int(count)))
    return fds


def _kept(stream: IO[str], pipes: bool) -> IO[str] | None:
    """`stream` if the daemon may keep writing to it, else None (/dev/null).

    `pipes`: a pipe is kept too (`enable_stdio_inheritance`).
    """
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if stat.S_ISREG(mode) or stat.S_ISSOCK(mode) or (pipes and stat.S_ISFIFO(mode)):
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
                    _wait_gone(record.get("pid"))
                    code = record["failed"]
                    return code if isinstance(code, int) and code > 0 else ExitCode.ERROR
    except KeyboardInterrupt:
        print("wsgid: stopped waiting; the daemon goes on starting", file=sys.stderr)
        return 130
    _print_failure(lines, "the daemon exited before it was ready")
    return ExitCode.ERROR


def _wait_gone(pid: object, timeout: float = 10.0) -> None:
    """Return once the failed daemon has exited, so that a failed start leaves nothing behind."""
    if not isinstance(pid, int) or pid <= 0:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat_file:
                if stat_file.read().rpartition(b")")[2].split()[0] in (b"Z", b"X"):
                    return
        except OSError:
            return
        time.sleep(0.01)


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
        print(f"wsgid: {escape.printable(message)}", file=sys.stderr)
    sys.stderr.flush()
