"""The error log and the access log, built from structlog processors.

Owns: where each log goes (stderr/stdout, a file reopened on USR1), how an
event becomes a line, and the level filter. Every part of wsgid logs through
`Logs.error` (server events and app tracebacks) and `Logs.access` (one event
per request, or None when the access log is off so the hot path does no work).

Each log is a pipeline of small processors ending in a renderer, structlog's
way; a new format or sink is a new processor or sink, not a branch elsewhere.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import IO, Any, TextIO

import structlog

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LogSink:
    """A line-oriented destination: `-` (a standard stream) or a file path.

    Files are opened in append mode and reopened on `reopen()` (USR1, after
    logrotate has moved them). Writes are serialised by a lock because the
    gthread worker logs from several threads.
    """

    def __init__(self, target: str, stream: TextIO) -> None:
        self.target = target
        self._default = stream
        self._lock = threading.Lock()
        self._file: IO[str] = self._open()

    def _open(self) -> IO[str]:
        if self.target == "-":
            return self._default
        fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        return os.fdopen(fd, "a", buffering=1, encoding="utf-8", errors="backslashreplace")

    def write(self, line: str) -> None:
        with self._lock:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except (OSError, ValueError):
                pass  # a full disk or a closed stderr must not take the server down

    def reopen(self) -> None:
        if self.target == "-":
            return
        new = self._open()
        with self._lock:
            old, self._file = self._file, new
        old.close()

    @property
    def stream(self) -> IO[str]:
        return self._file


class _SinkLogger:
    """The structlog 'logger' at the end of a pipeline: writes the rendered line."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write(message)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    now = time.time()
    event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
        f".{int(now % 1 * 1000):03d}Z"
    )
    return event


def _render_text(_: Any, level: str, event: EventDict) -> str:
    """`<time> [<level>] <event> key=value ...`, then any traceback lines."""
    timestamp = event.pop("timestamp", "")
    name = event.pop("event", "")
    tb = event.pop("exception", None)
    event.pop("level", None)
    parts = [f"{timestamp} [{level}] {name}"]
    parts.extend(f"{key}={_text_value(value)}" for key, value in event.items())
    line = " ".join(parts)
    return f"{line}\n{tb.rstrip()}" if tb else line


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\\\n\r\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def error_processors() -> list[Processor]:
    return [
        structlog.processors.add_log_level,
        _timestamp,
        structlog.processors.format_exc_info,
        _render_text,
    ]


class AccessLog:
    """One line per request, gunicorn's default (Apache common + referer/agent)."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def log(
        self,
        *,
        remote: str,
        method: str,
        target: bytes,
        version: str,
        status: int,
        size: int,
        referer: str,
        user_agent: str,
        duration_us: int,
    ) -> None:
        when = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime())
        request_line = _escape(f"{method} {target.decode('latin-1')} {version}")
        self._sink.write(
            f'{remote or "-"} - - {when} "{request_line}" {status} {size or "-"} '
            f'"{_escape(referer) or "-"}" "{_escape(user_agent) or "-"}"'
        )

    def reopen(self) -> None:
        self._sink.reopen()


def _escape(text: str) -> str:
    """Client-controlled text can never break the line or its quoting."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


class Logs:
    """The two logs of one process."""

    def __init__(self, errorlog: str, accesslog: str | None, loglevel: str) -> None:
        self._error_sink = LogSink(errorlog, sys.stderr)
        self.error: Any = structlog.wrap_logger(
            _SinkLogger(self._error_sink),
            processors=error_processors(),
            wrapper_class=structlog.make_filtering_bound_logger(LEVELS[loglevel]),
        )
        self.access: AccessLog | None = (
            AccessLog(LogSink(accesslog, sys.stdout)) if accesslog else None
        )

    @property
    def error_stream(self) -> IO[str]:
        """A text stream for `wsgi.errors`: whatever the error log writes to."""
        return self._error_sink.stream

    def reopen(self) -> None:
        self._error_sink.reopen()
        if self.access is not None:
            self.access.reopen()


def setup(settings: Any) -> Logs:
    """The logs described by `settings` (errorlog, accesslog, loglevel)."""
    return Logs(settings.errorlog, settings.accesslog, settings.loglevel)
