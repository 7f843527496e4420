"""The error log as a structlog pipeline, and the logger at its end.

Owns: the processor list of the error log for each format, and
`SinkLogger`, the structlog "logger" that hands the rendered record to a
sink together with the event's syslog severity.

    add_log_level -> add_request_id -> add_timestamp -> format_exc_info -> render

`add_request_id` binds the id of the request being served into every event
(app tracebacks, the timeout stack dump, stdlib records of the app).
"""

from __future__ import annotations

from typing import Any

import structlog

from wsgid.logs import render
from wsgid.logs.request_id import add_request_id
from wsgid.logs.sinks import SEVERITY, Sink

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def error_processors(fmt: str, colours: bool = False) -> list[render.Processor]:
    """The error log's pipeline for format `fmt` (console, json or logfmt)."""
    return [
        structlog.processors.add_log_level,
        add_request_id,
        render.add_timestamp,
        structlog.processors.format_exc_info,
        render.renderer(fmt, colours),
    ]


class SinkLogger:
    """The end of a structlog pipeline: one rendered record to the sink."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def _emit(self, severity: int) -> Any:
        def emit(record: str) -> None:
            self.sink.write(record, severity)

        return emit

    def __getattr__(self, name: str) -> Any:
        # structlog calls the method named after the level: info(record), error(record)...
        if name.startswith("__"):
            raise AttributeError(name)
        return self._emit(SEVERITY.get(name, 6))


def error_logger(sink: Sink, fmt: str, loglevel: str, colours: bool = False) -> Any:
    """A structlog bound logger writing to `sink` at `loglevel` and above."""
    return structlog.wrap_logger(
        SinkLogger(sink),
        processors=error_processors(fmt, colours),
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[loglevel]),
        cache_logger_on_first_use=False,
    )
