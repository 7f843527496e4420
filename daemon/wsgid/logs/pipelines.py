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
from typing import TYPE_CHECKING, Any

from wsgid.deferred_modules import deferring, without_package_init
from wsgid.logs import render
from wsgid.logs.request_id import add_request_id
from wsgid.logs.sinks import SEVERITY, Sink

if TYPE_CHECKING:
    from structlog import _native as native
else:
    # wsgid uses structlog's filtering bound logger; its processors are wsgid's own
    # (`render`), as structlog's module of them imports its rich tracebacks and with them
    # `dataclasses` and `inspect`. structlog's package imports all of structlog (its console
    # renderer, its stdlib integration, its global configuration: 5 ms of a start on one
    # CPU), so the logger's module is imported under a stand-in package whose first use, by
    # an app that uses structlog, imports the rest (wsgid.deferred_modules). Its async
    # methods want asyncio: wsgid calls none.
    with deferring("asyncio"):
        native = without_package_init("structlog", "_native")

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
        render.add_log_level,
        add_request_id,
        render.add_timestamp,
        render.format_exc_info,
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
    """A structlog bound logger writing to `sink` at `loglevel` and above.

    Made directly, not by `structlog.wrap_logger`: that one's proxy reads structlog's global
    configuration, which an app that uses structlog may set, and makes a logger per call."""
    # A BoundLoggerBase subclass (typed as the protocol its instances follow).
    bound_logger: Callable[..., Any] = native.make_filtering_bound_logger(LEVELS[loglevel])
    return bound_logger(SinkLogger(sink), error_processors(fmt, colours), {})
