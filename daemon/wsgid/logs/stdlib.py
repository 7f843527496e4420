"""The bridge between the standard library's `logging` and the wsgid logs.

Owns: what happens to the application's `logging` records, and the
`logconfig` / `logconfig_json` / `logconfig_dict` settings.

- `StdlibHandler` is a `logging.Handler` that sends each record through the
  error log's own pipeline (level, request id, timestamp, traceback, format,
  sink): `event` is the formatted message, `logger` the logger name, and the
  record's `extra` fields become event keys. Use it in a logging config to
  route everything there (see docs/logging.md).
- Records that find no handler at all (the ones Python would print through
  `logging.lastResort`, WARNING and above) are routed to the error log
  instead of appearing raw on stderr. An app that configures logging itself
  (`basicConfig`, `dictConfig`) is left alone.
- With a user config (gunicorn precedence: `logconfig_dict`, then
  `logconfig_json`, then `logconfig`, which may be a paste file's [loggers];
  a dict or JSON one laid over gunicorn's defaults, `over_gunicorn_defaults`)
  it is applied in the master before the workers fork, so it holds for the
  whole process tree. It replaces the root logger's handlers, not wsgid's
  logs, and the route of unhandled records is set again after it. A
  `logconfig` file may use `%(here)s` and `%(__file__)s`, as in gunicorn. If
  that config gives handlers to the loggers `wsgid.error` / `wsgid.access`
  (or gunicorn's `gunicorn.error` / `gunicorn.access`), wsgid's rendered
  records are also passed to them (`StdlibSink`).
- gunicorn's way to keep health checks out of the access log, a `logging.Filter`
  on the `gunicorn.access` logger (from `logconfig_dict` or added by a hook),
  holds for wsgid's own access log too (`FilteredSink`): a record the logger's
  filters refuse is written nowhere.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from wsgid.logs.sinks import INFO, Sink

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Event keys the pipeline owns; an `extra` of the same name is renamed.
_RESERVED = frozenset(("event", "level", "timestamp", "logger", "exc_info", "request_id", "pid"))

_error_log: Any = None  # the error logger of this process, set by Logs
# Set while a wsgid record is handed to a stdlib logger, so a config routing
# that logger back into wsgid (StdlibHandler) cannot loop.
_forwarding = threading.local()


def set_error_log(log: Any) -> None:
    global _error_log
    _error_log = log


def _method(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class StdlibHandler(logging.Handler):
    """Sends stdlib `logging` records to the wsgid error log of this process."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _error_log
        if log is None or getattr(_forwarding, "active", False):
            return
        try:
            fields: dict[str, Any] = {}
            for name, value in vars(record).items():
                if name not in _RECORD_ATTRS and not name.startswith("_"):
                    fields[f"extra_{name}" if name in _RESERVED else name] = value
            if record.exc_info and record.exc_info[0] is not None:
                fields["exc_info"] = record.exc_info
            if record.stack_info:
                fields["stack"] = record.stack_info
            fields["pid"] = os.getpid()
            getattr(log, _method(record.levelno))(record.getMessage(), logger=record.name, **fields)
        except Exception:
            self.handleError(record)


def route_unhandled() -> None:
    """Records no handler takes (Python's lastResort) go to the error log."""
    logging.lastResort = StdlibHandler(logging.WARNING)


def apply_user_config(
    logconfig: str | None,
    logconfig_json: str | None,
    logconfig_dict: Mapping[str, Any],
    create_files: bool = True,
) -> bool:
    """Apply the user's stdlib config, if any; True if one was applied.

    Raises ValueError with a readable reason when the config is broken.

    `create_files` False (`wsgid check`): the config is applied all the same, every handler
    built, but a `logging.FileHandler` (and its rotating kinds) writes to /dev/null after
    checking that its file could be opened (`wsgid.paths.appendable`), so a check leaves no
    log file behind and writes no record into one.
    """
    if not (logconfig_dict or logconfig_json or logconfig):
        return False
    # Imported only now: logging.config (with logging.handlers and socketserver) would add
    # about 0.8 MiB to every server, most of which have no logging config.
    import logging.config

    opener = logging.FileHandler._open
    if not create_files:
        logging.FileHandler._open = _open_checked  # type: ignore[method-assign,assignment]
    try:
        if logconfig_dict:
            logging.config.dictConfig(over_gunicorn_defaults(logconfig_dict))
        elif logconfig_json:
            with open(logconfig_json, encoding="utf-8") as fp:
                logging.config.dictConfig(over_gunicorn_defaults(json.load(fp)))
        elif logconfig:
            # What Paste Deploy files rely on, and gunicorn passes to any logconfig file:
            # %(here)s, the file's directory, and %(__file__)s, the file itself.
            path = os.path.abspath(logconfig)
            here = {"here": os.path.dirname(path), "__file__": path}
            logging.config.fileConfig(logconfig, defaults=here, disable_existing_loggers=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        which = (
            "logconfig_dict" if logconfig_dict else
            f"logconfig_json {logconfig_json}" if logconfig_json else f"logconfig {logconfig}"
        )  # fmt: skip
        # dictConfig's own message names the entry; what went wrong with it is the cause
        # (`No module named 'filters'`).
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        raise ValueError(
            f"the logging configuration ({which}) cannot be applied: {exc}{cause}"
        ) from exc
    finally:
        logging.FileHandler._open = opener  # type: ignore[method-assign]
    return True


def write_past(streams: Mapping[Any, IO[str]]) -> None:
    """Point the handlers of every logger that write to one of `streams`' keys (sys.stdout,
    sys.stderr) at its value instead.

    With `capture_output` those are the original stdout and stderr: the user's handlers print
    logging records, not the app's output. Captured, a wsgid record handed to a handler on
    stdout (`StdlibSink`) came back as an `app.output` event, which was handed to it again,
    and so on without end; under gunicorn, which captures nothing when its error log is
    stderr, such a handler prints to the real stdout.
    """
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and stream in streams:
                handler.setStream(streams[stream])


# gunicorn's CONFIG_DEFAULTS (gunicorn/glogging.py), which gunicorn updates with the user's
# logconfig_dict or logconfig_json before applying it, but its loggers: wsgid writes its error
# and access logs itself, and gunicorn's default gunicorn.error / gunicorn.access handlers
# would print each record a second time.
GUNICORN_DEFAULTS: Mapping[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        },
    },
}


def over_gunicorn_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` laid over gunicorn's defaults, key by key, as gunicorn lays it: a config that
    runs under gunicorn without a version, or naming its `console`, `error_console` or
    `generic` without defining them, runs here too, and the root logger it leaves out logs
    INFO to stdout. Unlike gunicorn, a config with handlers of its own and no root leaves the
    root logger alone (gunicorn refuses it: its default root names the console it replaced)."""
    merged = {key: value for key, value in GUNICORN_DEFAULTS.items() if key != "root"}
    merged.update(config)
    if "root" not in config and "console" in merged.get("handlers", {}):
        merged["root"] = GUNICORN_DEFAULTS["root"]
    return merged


def _open_checked(handler: logging.FileHandler) -> Any:
    """`FileHandler._open` for a check: /dev/null, once the handler's file could be opened."""
    from wsgid import paths

    paths.appendable(handler.baseFilename)
    return open(os.devnull, "a", encoding="utf-8")  # the handler closes it


def configured_logger(*names: str) -> logging.Logger | None:
    """The first of `names` that the user's config gave handlers, if any."""
    for name in names:
        logger = logging.getLogger(name)
        if logger.handlers:
            return logger
    return None


# The access loggers, wsgid's name first: records go to the first a user config gave
# handlers (`configured_logger`), and the filters of both hold for every record
# (`FilteredSink`).
ACCESS_LOGGERS = ("wsgid.access", "gunicorn.access")


class FilteredSink:
    """A sink whose records must first pass the filters of the access loggers.

    Filters are looked up at each record, not once: a hook (`on_starting`, `post_fork`) may
    add one after the logs were set up. A record refused by one is written nowhere.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.loggers = [logging.getLogger(name) for name in ACCESS_LOGGERS]

    def _kept(self, records: list[str]) -> list[str]:
        filtering = [logger for logger in self.loggers if logger.filters]
        if not filtering:
            return records
        return [
            record
            for record in records
            if all(logger.filter(_access_record(logger, record)) for logger in filtering)
        ]

    def write(self, record: str, severity: int = INFO) -> None:
        if self._kept([record]):
            self.sink.write(record, severity)

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        kept = self._kept(records)
        if kept:
            self.sink.write_many(kept, severity)

    def flush(self) -> None:
        self.sink.flush()

    def reopen(self) -> str | None:
        return self.sink.reopen()

    def close(self) -> None:
        self.sink.close()

    def isatty(self) -> bool:
        return self.sink.isatty()

    def fileno(self) -> int | None:
        return self.sink.fileno()


def _access_record(logger: logging.Logger, line: str) -> logging.LogRecord:
    """The LogRecord a filter sees: the access line as its message, as gunicorn's has it."""
    return logger.makeRecord(logger.name, logging.INFO, "", 0, line, (), None)


class StdlibSink:
    """Rendered wsgid records handed to a stdlib logger the user configured."""

    _LEVELS: ClassVar[dict[int, int]] = {
        7: logging.DEBUG, 6: logging.INFO, 5: logging.INFO, 4: logging.WARNING, 3: logging.ERROR,
    }  # fmt: skip

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, record: str, severity: int = INFO) -> None:
        _forwarding.active = True
        try:
            self.logger.log(self._LEVELS.get(severity, logging.CRITICAL), record)
        except Exception:
            pass
        finally:
            _forwarding.active = False

    def write_many(self, records: list[str], severity: int = INFO) -> None:
        for record in records:
            self.write(record, severity)

    def flush(self) -> None:
        pass  # nothing is kept back

    def reopen(self) -> str | None:
        return None

    def close(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int | None:
        return None
