"""The error log and the access log of a wsgid process, built from structlog pipelines.

Owns: turning the logging settings into the two logs every part of wsgid
uses. `setup(settings)` (the master, at start and on a reload that changes
logging) returns a `Logs`:

- `Logs.error`: a structlog logger for server events, app tracebacks and
  warnings, filtered at `loglevel`;
- `Logs.access`: the `AccessLog` (one event per request), or None when no
  access log is configured, so the request path does no logging work at all;
- `Logs.error_stream`: `wsgi.errors`, whose lines become error-log events;
- `Logs.reopen()` (USR1), `Logs.enter_worker()` (first thing in a worker),
  `Logs.close()`.

`check(settings)` (`wsgid check`) raises what `setup` would, without creating a file.

How a log is put together (one code path for every combination):

    event -> processors of the format (render.py / access.py) -> record text
          -> sink: `-` | file | syslog (sinks.py, syslog.py), several with --log-syslog

| module         | owns                                                          |
| -------------- | ------------------------------------------------------------- |
| `targets`      | parsing `-`, paths and syslog addresses                       |
| `sinks`        | stdout/stderr and files, reopen on USR1, failed writes        |
| `syslog`       | RFC 5424 / RFC 3164 framing, unix/UDP/TCP transports          |
| `render`       | json, logfmt, console renderers and shared processors         |
| `pipelines`    | the error log's processor list and structlog logger          |
| `access`       | the access event and the pipeline of each access format       |
| `atoms`        | gunicorn's `%(h)s ...` access format                          |
| `escape`       | escaping of client-controlled text for each format            |
| `request_id`   | request ids and their binding into error events               |
| `capture`      | `wsgi.errors` and `capture_output`                            |
| `stdlib`       | stdlib `logging` records and `logconfig*`                     |
| `clock`        | cached timestamp formats                                      |
"""

from __future__ import annotations

import functools
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from wsgid.logs import stdlib
from wsgid.logs.access import AccessLog
from wsgid.logs.capture import ErrorsStream, OutputCapture, original, original_stream
from wsgid.logs.pipelines import LEVELS, error_logger
from wsgid.logs.sinks import FileSink, JournalSink, MultiSink, Sink, StreamSink, is_journal
from wsgid.logs.syslog import SyslogSink
from wsgid.runtime import ConfigError
from wsgid.runtime_fields import LOGGING_SETTINGS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from wsgid.logs.targets import Target
    from wsgid.runtime import RuntimeSettings

__all__ = ["LEVELS", "AccessLog", "LogSetupError", "Logs", "check", "setup"]


class LogSetupError(ConfigError):
    """A log destination cannot be opened, or the user's logging config is broken."""


def _owner(user: str | None, group: str | None) -> tuple[int, int] | None:
    """uid/gid that files we create should belong to (`user`/`group` settings)."""
    from wsgid import privileges

    try:
        creds = privileges.resolve(user, group)
    except privileges.PrivilegeError:
        return None  # reported by the master, which drops privileges with the same call
    return None if creds is None else (creds.uid, creds.gid)


class Logs:
    """The two logs of one process tree, as the settings describe them."""

    def __init__(self, settings: RuntimeSettings, sources: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.loglevel = settings.loglevel
        self.log_format = settings.log_format
        user_config = _apply_user_config(settings)
        owner = _owner(settings.user, settings.group)
        where = settings.log_targets
        tag = settings.syslog_prefix or "wsgid"
        facility = settings.syslog_facility
        framing = settings.syslog_format
        self._sinks: list[Sink] = []
        self._stderr_log: Any = None  # where write failures of the error log are reported

        def open_sink(target: Target, which: str, std_fd: int, msgid: str, app: str) -> Sink:
            log = which.split()[0]  # "error" or "access"
            if target.kind == "stream":
                fd = original(std_fd)
                journal = is_journal(fd, os.environ)
                stream = JournalSink(fd) if journal else StreamSink(fd)
                stream.target = "stdout" if std_fd == 1 else "stderr"
                stream.report = functools.partial(self._report_failure, log)
                return stream
            if target.kind == "file":
                try:
                    file = FileSink(target.path, owner)
                except OSError as exc:
                    raise _cannot_open(which, target.path, exc, sources) from None
                file.report = functools.partial(self._report_failure, log)
                return file
            return SyslogSink(target, facility=facility, tag=app, msgid=msgid, framing=framing)

        # The error log: its destination, plus syslog (--log-syslog) and a
        # stdlib logger the user's logging config set up for it.
        error_sinks = [open_sink(where.error, "error log", 2, "error", tag)]
        self._error_primary = error_sinks[0]
        if where.error_syslog is not None:
            error_sinks.append(
                SyslogSink(
                    where.error_syslog, facility=facility, tag=tag, msgid="error", framing=framing
                )
            )
        if user_config and (forward := stdlib.configured_logger("wsgid.error", "gunicorn.error")):
            error_sinks.append(stdlib.StdlibSink(forward))
        self._error_sink = self._combine(error_sinks)
        colours = self.log_format == "console" and _colours(self._error_sink)
        self.error: Any = error_logger(self._error_sink, self.log_format, self.loglevel, colours)

        # The access log, the same way; absent entirely when nothing wants it.
        access_sinks: list[Sink] = []
        access_tag = f"{tag}.access"
        if where.access is not None:
            access_sinks.append(open_sink(where.access, "access log", 1, "access", access_tag))
        if where.access_syslog is not None:
            access_sinks.append(
                SyslogSink(
                    where.access_syslog, facility=facility, tag=access_tag, msgid="access",
                    framing=framing,
                )
            )  # fmt: skip
        if user_config and (forward := stdlib.configured_logger(*stdlib.ACCESS_LOGGERS)):
            access_sinks.append(stdlib.StdlibSink(forward))
        self.access: AccessLog | None = None
        # Failures of the access log are reported on the error log, unless both write to the
        # same file (or pipe): then on stderr.
        self._access_apart = not access_sinks or not _same_file(
            access_sinks[0], self._error_primary
        )
        if access_sinks:
            access_sink = self._combine(access_sinks)
            colours = _colours(access_sink)
            if user_config or settings.hook_imports:
                # Only then can a logging.Filter be on the access logger (stdlib.FilteredSink).
                access_sink = stdlib.FilteredSink(access_sink)
            self.access = AccessLog(access_sink, settings.access_log_format, colours)

        self._errors = ErrorsStream(self._wsgi_errors)
        stdlib.set_error_log(self.error)
        # Also after a user config: records no handler of it takes still reach the error log.
        stdlib.route_unhandled()
        self._capture = OutputCapture(self.error) if settings.capture_output else None
        if self._capture is not None:
            self._capture.start()
            if user_config:
                stdlib.write_past({sys.stdout: original_stream(1), sys.stderr: original_stream(2)})

    def _combine(self, sinks: list[Sink]) -> Sink:
        self._sinks.extend(sinks)
        return sinks[0] if len(sinks) == 1 else MultiSink(sinks)

    def _report_failure(self, log: str, target: str, error: str, lost: int, kept: int) -> None:
        """A log's writes failed (sinks.py): say so where it can be read.

        On the error log for the access log, if that is another file and is not failing
        itself; else, and always for the error log, on stderr (the original one, in the
        error log's format).
        """
        fields = {"log": log, "path": target, "error": error, "lost": lost, "kept": kept}
        primary = self._error_primary
        if log == "access" and self._access_apart and not getattr(primary, "failing", False):
            self.error.error("log.write_failed", **fields, pid=os.getpid())
            return
        if self._stderr_log is None:
            # No report of its own: nowhere is left to report to.
            self._stderr_sink = StreamSink(original(2))
            self._sinks.append(self._stderr_sink)
            self._stderr_log = error_logger(self._stderr_sink, self.log_format, self.loglevel)
        self._stderr_log.error("log.write_failed", **fields, pid=os.getpid())

    def _wsgi_errors(self, line: str) -> None:
        self.error.error("wsgi.errors", message=line, pid=os.getpid())

    @property
    def error_stream(self) -> IO[str]:
        """`wsgi.errors`: each line written becomes one error-log event."""
        return self._errors  # type: ignore[return-value]

    def enter_worker(self) -> None:
        """First thing in a forked worker: capture its own output, if asked to."""
        if self._capture is not None:
            self._capture.start()

    def flush(self) -> None:
        """A worker exits: log what its captured output still holds, write pending access
        records, and what failing sinks kept back."""
        if self._capture is not None:
            self._capture.drain()
        if self.access is not None:
            self.access.flush()
        for sink in self._sinks:
            sink.flush()  # and report what could not be written

    def reopen(self) -> None:
        """USR1: reopen the files (logrotate moved them) and reconnect syslog."""
        for sink in self._sinks:
            problem = sink.reopen()
            if problem:
                self.error.error("log.reopen_failed", error=problem, pid=os.getpid())

    def close(self) -> None:
        """Close the sinks (after a reload replaced these logs)."""
        for sink in self._sinks:
            sink.close()


def _same_file(a: Sink, b: Sink) -> bool:
    """Whether two sinks write to the same file, pipe or terminal."""
    fd_a, fd_b = a.fileno(), b.fileno()
    if fd_a is None or fd_b is None:
        return False
    try:
        stat_a, stat_b = os.fstat(fd_a), os.fstat(fd_b)
    except OSError:
        return False
    return (stat_a.st_dev, stat_a.st_ino) == (stat_b.st_dev, stat_b.st_ino)


def _colours(sink: Sink) -> bool:
    """ANSI colours only on a terminal, and never when NO_COLOR is set."""
    return sink.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def setup(settings: RuntimeSettings, sources: Mapping[str, str] | None = None) -> Logs:
    """The logs described by `settings`; `sources` (where each setting came from) names a log
    file's setting and source when it cannot be opened."""
    return Logs(settings, sources)


def check(settings: RuntimeSettings, sources: Mapping[str, str] | None = None) -> None:
    """`wsgid check`: the LogSetupError `setup(settings, sources)` would raise, in the same
    order, leaving no file behind.

    The user's logging config is applied in this process, as the master applies it, with
    its file handlers checked rather than opened (`stdlib.apply_user_config`). A log file is
    not opened when it does not exist, since that would create it: `wsgid.paths.appendable`
    asks whether it could be (its directory exists and may be written), and opens only a
    file that exists, without O_CREAT. Syslog destinations are not checked: their sinks
    connect at the first record, and report a failure then, when serving too.
    """
    _apply_user_config(settings, create_files=False)
    from wsgid import paths

    where = settings.log_targets
    for target, which in ((where.error, "error log"), (where.access, "access log")):
        if target is not None and target.kind == "file":
            try:
                paths.appendable(target.path)
            except OSError as exc:
                raise _cannot_open(which, target.path, exc, sources) from None


def _apply_user_config(settings: RuntimeSettings, create_files: bool = True) -> bool:
    """The user's logging config applied (`stdlib.apply_user_config`); LogSetupError if it
    cannot be."""
    try:
        return stdlib.apply_user_config(
            settings.logconfig, settings.logconfig_json, settings.logconfig_dict, create_files
        )
    except ValueError as exc:
        raise LogSetupError(str(exc)) from None


# The setting each log's file comes from, to name it and its source in an error.
_SETTING_OF = {"error log": "errorlog", "access log": "accesslog"}


def _cannot_open(
    which: str, path: str, exc: OSError, sources: Mapping[str, str] | None = None
) -> LogSetupError:
    setting = _SETTING_OF[which]
    source = (sources or {}).get(setting, "default")
    origin = f" ({setting}, from {source})" if source != "default" else f" ({setting})"
    return LogSetupError(f"The {which} {path} cannot be opened{origin}: {exc.strerror or exc}.")


# What `Logs` is built from: the logging settings, and user/group, who owns the files it creates.
SETTINGS = (*LOGGING_SETTINGS, "user", "group")


def changed(old: RuntimeSettings, new: RuntimeSettings) -> bool:
    """Whether a reload from settings `old` to `new` needs new logs (`setup(new)`)."""
    return any(getattr(old, n) != getattr(new, n) for n in SETTINGS)
