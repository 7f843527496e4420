"""The error log as a structlog pipeline, and the logger at its end.

Owns: the processor list of the error log for each format, and
`SinkLogger`, the structlog "logger" that hands the rendered record to a
sink together with the event's syslog severity.

    count_level -> add_log_level -> add_request_id -> add_timestamp -> format_exc_info -> render

`count_level` counts the event by its level for the metrics (gunicorn's
`gunicorn.log.<level>`), once the master has said where (`LEVEL_COUNT.count`:
the scoreboard's counters of the process's slot). `add_request_id` binds the
id of the request being served into every event (app tracebacks, the timeout
stack dump, stdlib records of the app).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from wsgid.deferred_modules import deferring
from wsgid.logs import render
from wsgid.logs.request_id import add_request_id
from wsgid.logs.sinks import SEVERITY, Sink

# structlog's async methods want asyncio, its deprecated thread-local module uuid: wsgid
# calls neither, and asyncio alone is a tenth of a start (wsgid.deferred_modules).
with deferring("asyncio", "uuid"):
    import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_SYNONYMS = {"warn": "warning", "fatal": "critical"}


class LevelCount:
    """Processor: count each event under the logging method called (exception apart)."""

    def __init__(self) -> None:
        self.count: Callable[[str], None] | None = None

    def __call__(self, _: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        if self.count is not None:
            # structlog's exception() is error() with exc_info: gunicorn counts it apart.
            exception = method == "error" and event.get("exc_info")
            self.count("exception" if exception else _SYNONYMS.get(method, method))
        return event


LEVEL_COUNT = LevelCount()  # one per process: the master's scoreboard, inherited by workers


def error_processors(fmt: str, colours: bool = False) -> list[render.Processor]:
    """The error log's pipeline for format `fmt` (console, json or logfmt)."""
    return [
        LEVEL_COUNT,
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
