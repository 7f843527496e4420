"""The processors and renderers that turn an event dict into one log record.

Owns: the shape of a record in each format, for both logs.

- `json`: one JSON object per line, ASCII only (`ensure_ascii`), so every byte
  a client sent is escaped and no input can end the line or add a key;
  `timestamp`, `level`, `event` first, then the event's own keys.
- `logfmt`: `key=value` pairs on one line; values quoted and escaped as needed
  (see `escape.logfmt`).
- `console`: `<time> [<level>] <event> key=value ...` for people (the format
  the error log always had), colour only when asked for (a terminal), and
  multi-line values (tracebacks, stack dumps) on the following lines, each
  indented four spaces so no text inside them can pass for a record of its own.

Processors have structlog's signature `(logger, method_name, event_dict)`; a
renderer is the last processor and returns the record text. A log is a list of
them (see `pipelines.py`), never a branch on the format elsewhere.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any

from wsgid.logs import escape
from wsgid.logs.clock import iso_utc

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]
Renderer = Callable[[Any, str, EventDict], str]

FORMATS = ("console", "json", "logfmt")

# Keys holding multi-line text: rendered as blocks below a console line.
BLOCK_KEYS = ("exception", "stack", "stacks")
# A key whose text is a block when it has several lines: an app that failed to load says why
# with the traceback of its import (`worker.app_load_failed`), and a one-line error stays a
# pair of the line.
TEXT_KEYS = ("error",)
_FIRST = ("timestamp", "level", "event")

_COLOURS = {
    "debug": "\x1b[34m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;31m",
}
# structlog's level names for its methods: `warn` is `warning`, `exception` is `error`.
_METHOD_LEVELS = {"warn": "warning", "exception": "error"}
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


def add_timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    """`timestamp`: now, ISO 8601 UTC with milliseconds (unless already set)."""
    if "timestamp" not in event:
        event["timestamp"] = iso_utc(time.time())
    return event


def add_log_level(_: Any, method: str, event: EventDict) -> EventDict:
    """`level`: the name of the logging method called (`log.warning(...)`: warning)."""
    event["level"] = _METHOD_LEVELS.get(method, method)
    return event


def format_exc_info(_: Any, __: str, event: EventDict) -> EventDict:
    """`exception`: the traceback `exc_info` asks for, as text; `exc_info` is an exception,
    an exc_info tuple, or true for the exception being handled (none: no key)."""
    exc_info = _exc_info(event.pop("exc_info", None))
    if exc_info is not None:
        text = "".join(traceback.format_exception(*exc_info))
        event["exception"] = text[:-1] if text.endswith("\n") else text
    return event


def _exc_info(
    value: Any,
) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return (type(value[1]), value[1], value[2])
    if value:
        current = sys.exc_info()
        if current[1] is not None:
            return (type(current[1]), current[1], current[2])
    return None


def _ordered(event: EventDict) -> dict[str, Any]:
    ordered = {k: event[k] for k in _FIRST if k in event}
    ordered.update((k, v) for k, v in event.items() if k not in ordered)
    return ordered


# --------------------------------------------------------------------------- json

_encoder = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=repr, check_circular=False
)


def _json_safe(value: Any) -> Any:
    """A copy of `value` that JSON can carry: odd floats and keys become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return repr(value)


def render_json(_: Any, __: str, event: EventDict) -> str:
    """One JSON object, ASCII only, `timestamp`/`level`/`event` first."""
    ordered = _ordered(event)
    try:
        return _encoder.encode(ordered)
    except (ValueError, TypeError, RecursionError):
        return _encoder.encode(_json_safe(ordered))


# --------------------------------------------------------------------------- logfmt


def logfmt_value(value: Any) -> str:
    if type(value) is str:
        return escape.logfmt(value)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return escape.logfmt(str(value))


def render_logfmt(_: Any, __: str, event: EventDict) -> str:
    """`timestamp=... level=... event=... key=value ...` on one line."""
    return " ".join(f"{escape.key(k)}={logfmt_value(v)}" for k, v in _ordered(event).items())


# --------------------------------------------------------------------------- console


def _block(text: str) -> str:
    """Multi-line text, each line indented and stripped of control characters."""
    lines = []
    for line in str(text).rstrip().split("\n"):
        if not line.isprintable():
            line = "".join(
                ch if ch.isprintable() or ch == "\t" else f"\\u{ord(ch):04x}" for ch in line
            )
        lines.append("    " + line)
    return "\n".join(lines)


def console_renderer(colours: bool) -> Renderer:
    """The human format; `colours` adds ANSI colours (only for a terminal)."""

    def render_console(_: Any, __: str, event: EventDict) -> str:
        timestamp = event.pop("timestamp", "")
        level = str(event.pop("level", ""))
        name = escape.logfmt(str(event.pop("event", "")))
        blocks = [event.pop(k) for k in BLOCK_KEYS if event.get(k)]
        blocks += [
            event.pop(k) for k in TEXT_KEYS if isinstance(event.get(k), str) and "\n" in event[k]
        ]
        pairs = [f"{escape.key(k)}={logfmt_value(v)}" for k, v in event.items()]
        if colours:
            colour = _COLOURS.get(level, "")
            head = f"{_DIM}{timestamp}{_RESET} [{colour}{level}{_RESET}] {_BOLD}{name}{_RESET}"
            pairs = [f"{_DIM}{p.replace('=', '=' + _RESET, 1)}" for p in pairs]
        else:
            head = f"{timestamp} [{level}] {name}"
        line = " ".join([head, *pairs])
        for block in blocks:
            line += "\n" + _block(block)
        return line

    return render_console


def renderer(fmt: str, colours: bool = False) -> Renderer:
    """The renderer of the error-log format `fmt` (json, logfmt or console)."""
    if fmt == "json":
        return render_json
    if fmt == "logfmt":
        return render_logfmt
    if fmt == "console":
        return console_renderer(colours)
    raise ValueError(f"unknown log format {fmt!r}")
