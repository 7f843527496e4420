"""`spew`: gunicorn's "nuclear option", every line of Python a worker runs, in its error log.

Owns: the line tracer a worker installs on itself right after the fork (never in the
master, which would trace its own loop and hand the tracer to every process it forks), and
the warning the master logs at start.

The tracer is set with both `sys.settrace` (the worker's main thread, from the moment it is
installed, so the application's import is traced too) and `threading.settrace` (every thread
started afterwards: the gthread pool). Each `line` event becomes one error-log event at
debug level, `spew` with `line="module:lineno: source"` (gunicorn prints the same text to
stdout). Logging from inside the tracer is not traced itself: CPython suspends tracing while
a trace function runs. Nor is the logging machinery when the worker or the app logs (wsgid's
logs, structlog, `logging`): a line traced inside a sink's locked write would log from the
tracer into that same sink, and wait for its own lock for ever.

What it cannot show: code that runs no Python lines, such as C extensions and wsgid's own
request path in the compiled (mypyc) build (`wsgid --version` says which build runs). The
lines are written only at loglevel debug; at any other level the tracer is not installed,
since every line would cost a call for nothing.
"""

from __future__ import annotations

import linecache
import sys
import threading
from types import FrameType
from typing import Any

from wsgid import build

# The packages that write log records: their frames are not traced (see above).
_UNTRACED = ("wsgid.logs", "structlog", "logging")


def _untraced(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _UNTRACED)


class _Tracer:
    """The trace function: one debug event per line executed."""

    __slots__ = ("debug",)

    def __init__(self, log: Any) -> None:
        self.debug = log.debug

    def __call__(self, frame: FrameType, event: str, arg: object) -> _Tracer | None:
        if event == "call" and _untraced(frame.f_globals.get("__name__", "")):
            return None  # no line of this frame is traced
        if event == "line":
            lineno = frame.f_lineno
            module = frame.f_globals.get("__name__", "?")
            # linecache reads the file once; a frame without a source file (exec'd code,
            # a zip without its .py) gives "" rather than an error (gunicorn #3344).
            source = linecache.getline(frame.f_code.co_filename, lineno).rstrip()
            self.debug("spew", line=f"{module}:{lineno}: {source}")
        return self


def install(log: Any, loglevel: str) -> None:
    """Trace this process's threads, present (the caller's) and future, into `log`."""
    if loglevel != "debug":
        return  # announce() said why nothing shows
    tracer = _Tracer(log)
    threading.settrace(tracer)
    sys.settrace(tracer)


def announce(log: Any, loglevel: str) -> None:
    """The master's warning at start: what spew shows, and what it does not."""
    if loglevel != "debug":
        log.warning(
            "spew.inactive",
            reason="spew writes at debug level and loglevel is " + loglevel,
            fix="set loglevel = debug (--log-level debug), or drop spew",
        )
        return
    compiled = build() == "compiled"
    log.warning(
        "spew.enabled",
        build=build(),
        untraced=(
            "compiled wsgid frames (http/ and workers/, the request path) and C extensions:"
            " they run no Python lines"
            if compiled
            else "C extensions only (this pure-Python build traces wsgid's own lines too)"
        ),
        cost="every line executed is a log event: serving is many times slower",
        better="py-spy dump/record, hunter (docs/running.md)",
    )
