"""The access log: one event per request, rendered in the operator's format.

Owns: what an access event holds and the pipeline of each access format.
The worker keeps each answered request with `capture(log.pending, ...)` (or
`AccessLog.request(...)`, the same thing as a method), logs requests refused
before they reached the app with `rejected(...)`, and calls `flush()` at the
end of each turn of its loop, which renders that turn's events and writes
them at once. When the access log is off there is no `AccessLog` at all, so
the hot path pays one `is None` test and nothing else.

Every event carries (in this order, which is the JSON key order):

| key             | value                                                     |
| --------------- | --------------------------------------------------------- |
| `timestamp`     | end of the response (ISO 8601 UTC in json/logfmt/console) |
| `remote_addr`, `remote_port` | the client (as the app's environ has it)     |
| `remote_user`   | REMOTE_USER or the HTTP Basic user name, else null        |
| `method`, `path`, `query`, `protocol` | the request line, path and query raw (undecoded) |
| `status`        | the status code sent                                      |
| `bytes_sent`    | response body bytes                                       |
| `request_bytes` | request body bytes received                               |
| `duration_us`   | from the complete head to the end of the response, µs     |
| `user_agent`, `referer` | the headers, or null                              |
| `request_id`    | see `request_id.py`                                       |
| `pid`           | the worker                                                |

Formats (`access_log_format`): `json`, `logfmt`, `console` (the same events
as the error log renders them), `combined` (Apache/nginx combined, escaped
as nginx does), or any gunicorn `%(x)s` atom string (see `atoms.py`).
Each is a list of structlog-style processors ending in a renderer; json, logfmt
and combined also render a served request straight from what was captured (the
`captured_*` functions), which writes the same bytes for less than half the cost.
For json and logfmt, `captured_*` hand the request to the C renderers of
`records.c` first (half the cost again), which decline anything but ASCII text,
None and 64-bit ints; `python_json` and `python_logfmt` write what they decline,
and every record of a pure-Python build. The module is compiled by mypyc with
the hot path.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final, TypeGuard

from mypy_extensions import mypyc_attr

from wsgid.access_formats import NAMED_FORMATS
from wsgid.http.request import Request
from wsgid.logs import escape, render
from wsgid.logs.atoms import AtomFormat, request_target
from wsgid.logs.clock import clf_local, iso_utc
from wsgid.logs.sinks import INFO, Sink

EventDict = MutableMapping[str, Any]
# What `AccessLog.request()` keeps of a request until the flush: (time, req, status, bytes
# sent, environ, response headers, duration in µs). Typed as they are (the compiled request,
# the environ's dict), so that the compiled renderers read them without generic lookups.
Captured = tuple[float, Request, int, int, dict[str, Any], Any, int]
# An access log's records waiting for its flush: captured requests, and events (refusals).
Pending = list[Captured | dict[str, Any]]
# Fields whose text a client chose: decoded for the structured formats.
CLIENT_FIELDS: Final = ("remote_addr", "remote_user", "path", "query", "user_agent", "referer")


class _Process:
    """This process's pid, and as the records print it: read per record, so an attribute of a
    compiled object (a module global would cost a dictionary lookup, the text a conversion)."""

    def __init__(self) -> None:
        self.pid = 0
        self.text = ""
        self.refresh()

    def refresh(self) -> None:
        self.pid = os.getpid()
        self.text = str(self.pid)


_process: Final = _Process()
os.register_at_fork(after_in_child=_process.refresh)


def environ_text(value: object) -> str | None:
    """An environ value the log prints as text, as text: the app may have replaced what wsgid
    put there with anything (bytes are taken as the latin-1 text of their bytes, as PEP 3333
    holds request text; anything else as `str()` prints it)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def is_port(value: object) -> TypeGuard[str]:
    """Whether an environ's REMOTE_PORT is a port number: ASCII digits (an app may have set
    it to anything; `int()` also takes other scripts' digits, and `isdigit` superscripts)."""
    return isinstance(value, str) and value.isdigit() and value.isascii()


def remote_user(environ: Mapping[str, Any]) -> str | None:
    """REMOTE_USER, else the user name of an HTTP Basic `Authorization` header."""
    user = environ.get("REMOTE_USER")
    if user:
        return environ_text(user)
    auth = environ.get("HTTP_AUTHORIZATION")
    if not auth or auth[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


# --------------------------------------------------------------------------- processors


def iso_timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    event["timestamp"] = iso_utc(event["timestamp"])
    return event


def decode_client_fields(_: Any, __: str, event: EventDict) -> EventDict:
    """Request bytes (held as latin-1 text) to readable text, invalid UTF-8 as `\\xHH`."""
    for name in CLIENT_FIELDS:
        value = event.get(name)
        if value is not None and not value.isascii():
            event[name] = escape.client_text(value)
    return event


# Access events always have these keys in this order (`AccessLog.request` and
# `rejected` build them so); `captured_json` and `captured_logfmt` write a served
# request's line in the same order, straight from what was captured.
ACCESS_KEYS: Final = (
    "timestamp", "remote_addr", "remote_port", "remote_user", "method", "path", "query",
    "protocol", "status", "bytes_sent", "request_bytes", "duration_us", "user_agent",
    "referer", "request_id", "pid",
)  # fmt: skip
# Final: compiled, a static the renderers read without a lookup in the module's dict.
_json_str: Final = json.encoder.encode_basestring_ascii  # ASCII output: any byte is escaped
_client_text: Final = escape.client_text


def _js(value: str | None) -> str:
    """A string of the event as JSON; request bytes decoded (see `escape.client_text`)."""
    if value is None:
        return "null"
    text = _json_str(value)
    # Only the two quotes added: printable ASCII that needed no escape, the usual value, and
    # what the careful way below would give. `str.isascii` costs a generic method call in
    # compiled code; this costs two lengths.
    if len(text) == len(value) + 2:
        return text
    return _json_str(value if value.isascii() else _client_text(value))


def _lf(value: str | None) -> str:
    """The same for logfmt."""
    if value is None:
        return "null"
    quoted = _json_str(value)
    # As in `_js`: nothing escaped means ASCII without a control character, `"` or `\`; with
    # no DEL either (JSON leaves it as it is), the value is printable, and logfmt's quoted
    # form of it is the JSON one.
    if len(quoted) == len(value) + 2 and "\x7f" not in value:
        return value if value and " " not in value and "=" not in value else quoted
    return escape.logfmt(value if value.isascii() else _client_text(value))


def render_json(_: Any, __: str, e: EventDict) -> str:
    """The access event as one JSON object, keys in event order, request text decoded.

    A served request in the json format is rendered by `captured_json` instead; this
    renders the rest (refused requests).
    """
    parts = []
    for key, value in e.items():
        if value is None or type(value) is str:
            text = _js(value)
        elif type(value) is int:
            text = str(value)
        else:
            text = render.render_json(None, "", {"v": value})[5:-1]
        parts.append(f"{_json_str(str(key))}:{text}")
    return "{" + ",".join(parts) + "}"


def render_logfmt(_: Any, __: str, e: EventDict) -> str:
    """`key=value ...` in event order, values escaped (see `escape.logfmt`)."""
    return " ".join(
        f"{escape.key(str(k))}={_lf(v) if v is None or type(v) is str else render.logfmt_value(v)}"
        for k, v in e.items()
    )


# ------------------------------------------------------------- straight from a captured request


# The named formats render a served request straight from what `request()` captured,
# without building its event dict and running the processors over it: together those
# cost as much as the rendering itself. The output is the same, byte for byte, as the
# generic path's, which every other event takes (refused requests, gunicorn atom strings)
# and any captured request these do not take (they return None).
#
# Fields wsgid itself wrote (the time, the method token, the protocol) need no escaping in
# any of these formats (a method is a token: no space, `=`, quote or backslash); what a
# client or the app chose is escaped as in the generic path.
def _port(environ: dict[str, Any]) -> str:
    port = environ.get("REMOTE_PORT")
    if not is_port(port):
        return "null"
    # As the event's int would print; the environ's own text when it already is (no int()).
    return port if port[0] != "0" or len(port) == 1 else str(int(port))


def _user(environ: dict[str, Any]) -> str | None:
    if "REMOTE_USER" in environ or "HTTP_AUTHORIZATION" in environ:
        return remote_user(environ)
    return None


def _target_text(raw: bytes) -> str:
    return raw.decode("latin-1")


CRecord = Callable[..., str | None]


def _c_renderer(name: str) -> CRecord | None:
    """A C renderer of the usual records (`records.json_record`, `records.logfmt_record`),
    where the build has it: setup.py compiles it with the hot path, a pure-Python build has
    none."""
    try:
        from wsgid.logs import records
    except ImportError:
        return None
    renderer: CRecord = getattr(records, name)
    return renderer


# Final: compiled, C statics called directly, without a lookup in the module's dict.
_c_json: Final = _c_renderer("json_record")
_c_logfmt: Final = _c_renderer("logfmt_record")


def _c_record(render: CRecord | None, item: Captured) -> str | None:
    """The record of `item` from a C renderer; None when the build has none or it declines
    (text that is not ASCII, and the like: the f-string renderers write those)."""
    if render is None:
        return None
    now, req, status, sent, env, _, dur = item
    return render(
        iso_utc(now), env, _user(env), req.method, req.path, req.query, req.version,
        status, sent, req.body_received, dur, _process.text,
    )  # fmt: skip


def captured_json(item: Captured) -> str | None:
    """`render_json` of the event of a captured request, or None for the generic path."""
    if not item[1].method:
        return None
    # Requests whose text is ASCII (nearly all) are written in one C buffer, at less than
    # half the cost of the f-string, which writes the rest.
    record = _c_record(_c_json, item)
    return record if record is not None else python_json(item)


def python_json(item: Captured) -> str:
    """`captured_json` without the C renderer: what it writes, for any request."""
    now, req, status, sent, env, _, dur = item
    # One f-string, keys in ACCESS_KEYS order: compiled, it is a single join of the pieces,
    # half the cost of a %-template of the same line.
    return (
        f'{{"timestamp":"{iso_utc(now)}","remote_addr":{_js(env.get("REMOTE_ADDR"))},'
        f'"remote_port":{_port(env)},"remote_user":{_js(_user(env))},'
        f'"method":"{req.method}","path":{_js(_target_text(req.path))},'
        f'"query":{_js(_target_text(req.query))},"protocol":"{req.version}",'
        f'"status":{status},"bytes_sent":{sent},"request_bytes":{req.body_received},'
        f'"duration_us":{dur},"user_agent":{_js(env.get("HTTP_USER_AGENT"))},'
        f'"referer":{_js(env.get("HTTP_REFERER"))},'
        f'"request_id":{_js(env.get("wsgid.request_id"))},"pid":{_process.text}}}'
    )


def captured_logfmt(item: Captured) -> str | None:
    """`render_logfmt` of the event of a captured request, or None for the generic path."""
    if not item[1].method:
        return None
    record = _c_record(_c_logfmt, item)  # as in captured_json
    return record if record is not None else python_logfmt(item)


def python_logfmt(item: Captured) -> str:
    """`captured_logfmt` without the C renderer: what it writes, for any request."""
    now, req, status, sent, env, _, dur = item
    return (
        f"timestamp={iso_utc(now)} remote_addr={_lf(env.get('REMOTE_ADDR'))} "
        f"remote_port={_port(env)} remote_user={_lf(_user(env))} "
        f"method={req.method} path={_lf(_target_text(req.path))} "
        f"query={_lf(_target_text(req.query))} protocol={req.version} status={status} "
        f"bytes_sent={sent} request_bytes={req.body_received} duration_us={dur} "
        f"user_agent={_lf(env.get('HTTP_USER_AGENT'))} referer={_lf(env.get('HTTP_REFERER'))} "
        f"request_id={_lf(env.get('wsgid.request_id'))} pid={_process.text}"
    )


def captured_combined(item: Captured) -> str | None:
    """`render_combined` of the event of a captured request, or None for the generic path."""
    now, req, status, sent, environ, _, _ = item
    method = req.method
    if not method:
        return None
    query = req.query
    target = f"{_target_text(req.path)}?{_target_text(query)}" if query else _target_text(req.path)
    request = f"{escape.clf(method)} {escape.clf(target)} {req.version}"
    return _combined_line(
        environ.get("REMOTE_ADDR"), _user(environ), now, request, status, sent,
        environ.get("HTTP_REFERER"), environ.get("HTTP_USER_AGENT"),
    )  # fmt: skip


def render_combined(_: Any, __: str, event: EventDict) -> str:
    """`host - user [time] "request" status bytes "referer" "agent"` (Apache combined)."""
    method = event["method"]
    # A request refused before its request line was understood logs as "-", as in nginx.
    request = (
        f"{escape.clf(method)} {escape.clf(request_target(event))} {event['protocol']}"
        if method
        else "-"
    )
    return _combined_line(
        event["remote_addr"], event["remote_user"], event["timestamp"], request,
        event["status"], event["bytes_sent"], event["referer"], event["user_agent"],
    )  # fmt: skip


def _combined_line(
    addr: str | None, user: str | None, now: float, request: str, status: int, sent: int,
    referer: str | None, agent: str | None,
) -> str:  # fmt: skip
    """The combined line of these fields (`request` escaped already)."""
    clf = escape.clf
    return (
        f"{clf(addr or '-')} - {clf(user) if user else '-'} [{clf_local(now)}] "
        f'"{request}" {status} {sent if sent else "-"} '
        f'"{clf(referer) if referer else "-"}" "{clf(agent) if agent else "-"}"'
    )


_STATUS_COLOURS: Final = {2: "\x1b[32m", 3: "\x1b[36m", 4: "\x1b[33m", 5: "\x1b[31m"}


def console_renderer(colours: bool) -> render.Renderer:
    """`<time> <addr> "<request>" <status> <bytes>B <ms>ms key=value ...` for people."""

    def render_console(_: Any, __: str, event: EventDict) -> str:
        status = event["status"]
        status_text = str(status)
        if colours:
            status_text = f"{_STATUS_COLOURS.get(status // 100, '')}{status}\x1b[0m"
        method = event["method"]
        request = (
            escape.logfmt(f"{method} {request_target(event)} {event['protocol']}")
            if method
            else "-"
        )
        rest = " ".join(
            f"{k}={render.logfmt_value(event[k])}"
            for k in ("request_id", "user_agent", "referer", "remote_user", "pid")
            if event.get(k) is not None
        )
        return (
            f"{event['timestamp']} {escape.logfmt(str(event['remote_addr']))} {request} "
            f"{status_text} {event['bytes_sent']}B {event['duration_us'] / 1000:.3f}ms {rest}"
        )

    return render_console


def pipeline(fmt: str, colours: bool = False) -> list[render.Processor]:
    """The processors of access format `fmt` (a name or a gunicorn atom string)."""
    if fmt == "json":
        return [iso_timestamp, render_json]  # render_json decodes request text itself
    if fmt == "logfmt":
        return [iso_timestamp, render_logfmt]
    if fmt == "console":
        return [iso_timestamp, decode_client_fields, console_renderer(colours)]
    if fmt == "combined":
        return [render_combined]
    atoms = AtomFormat(fmt)
    return [lambda _, __, event: atoms.render(event)]


def compose(processors: list[render.Processor]) -> Callable[[EventDict], str]:
    """One callable running `processors` in order (structlog's loop, without a logger)."""
    if len(processors) == 1:
        only = processors[0]
        return lambda event: only(None, "info", event)

    def run(event: EventDict) -> str:
        result: Any = event
        for processor in processors:
            result = processor(None, "info", result)
        return result  # type: ignore[no-any-return]

    return run


# Requests held before a flush renders them without waiting for the loop (gthread
# pool threads can finish many requests while the loop is in one turn).
BATCH_LIMIT: Final = 256


def capture(
    pending: Pending, req: Request, status: int, bytes_sent: int,
    environ: dict[str, Any], headers: Any, duration_us: int,
) -> bool:  # fmt: skip
    """Keep an answered request in `pending` (an `AccessLog`'s) until its next flush.

    What `AccessLog.request` does; the serving loop calls it itself, compiled to a direct
    call and a list append, which costs a fraction of a method call on the log. True when
    the batch is full and the caller should flush it now.
    """
    pending.append((time.time(), req, status, bytes_sent, environ, headers, duration_us))
    return len(pending) >= BATCH_LIMIT


# Compiled by mypyc with the hot path, yet a Python class: the registry below holds it by weak
# reference, which mypyc's native classes do not allow.
@mypyc_attr(native_class=False)
class AccessLog:
    """The access log of one process: captures each request, renders them in batches.

    `capture()` only keeps references to what the event needs (a tuple: the
    request is over, nothing changes them any more); `flush()`, which the
    worker's loop calls at the end of every turn, builds that turn's events,
    runs the pipeline over them and writes all the records at once. The work
    is the same, but done back to back it runs with warm caches and costs one
    write(2) per turn instead of one per request: measured in a worker under
    load, about half the CPU of rendering each record in the request path.
    A worker killed with SIGKILL loses the records of its current turn.
    """

    def __init__(self, sink: Sink, fmt: str, colours: bool = False) -> None:
        self.sink = sink
        self.format = fmt
        self._render = compose(pipeline(fmt, colours))
        # gunicorn atoms may read any environ key or response header.
        self._context = fmt not in NAMED_FORMATS
        # What `capture` keeps until the next flush. The serving loop appends to it directly,
        # without a lock: appending is one atomic operation even when gthread's pool threads
        # do it while the loop flushes. Flushes take their records under the lock.
        self.pending: Pending = []
        self._lock = threading.Lock()
        _access_logs.add(self)

    def request(
        self, req: Request, status: int, bytes_sent: int, environ: dict[str, Any],
        headers: Any, duration_us: int,
    ) -> None:  # fmt: skip
        """Log one answered request (called after the response was sent)."""
        if capture(self.pending, req, status, bytes_sent, environ, headers, duration_us):
            self.flush()

    def event(
        self, now: float, req: Request, status: int, bytes_sent: int, environ: dict[str, Any],
        headers: Any, duration_us: int,
    ) -> dict[str, Any]:  # fmt: skip
        """The access event of a captured request (see the module docstring)."""
        port = environ.get("REMOTE_PORT")
        event: dict[str, Any] = {
            "timestamp": now,
            "remote_addr": environ_text(environ.get("REMOTE_ADDR")),
            "remote_port": int(port) if is_port(port) else None,
            "remote_user": _user(environ),
            "method": req.method,
            "path": req.path.decode("latin-1"),
            "query": req.query.decode("latin-1"),
            "protocol": req.version,
            "status": status,
            "bytes_sent": bytes_sent,
            "request_bytes": req.body_received,
            "duration_us": duration_us,
            "user_agent": environ_text(environ.get("HTTP_USER_AGENT")),
            "referer": environ_text(environ.get("HTTP_REFERER")),
            "request_id": environ_text(environ.get("wsgid.request_id")),
            "pid": _process.pid,
        }  # fmt: skip
        if self._context:
            event["_environ"] = environ
            event["_headers"] = headers
        return event

    def rejected(self, base: Mapping[str, Any], status: int) -> None:
        """Log a request refused before it was parsed (400, 408, 413, 414, 431...)."""
        port = base.get("REMOTE_PORT")
        event: dict[str, Any] = {
            "timestamp": time.time(),
            "remote_addr": base.get("REMOTE_ADDR"),
            "remote_port": int(port) if is_port(port) else None,
            "remote_user": None,
            "method": None,
            "path": None,
            "query": None,
            "protocol": None,
            "status": status,
            "bytes_sent": 0,
            "request_bytes": 0,
            "duration_us": 0,
            "user_agent": None,
            "referer": None,
            "request_id": None,
            "pid": _process.pid,
        }
        if self._context:
            event["_environ"] = {}
            event["_headers"] = []
        self.pending.append(event)
        self.flush()  # rare: no batch to wait for

    def flush(self) -> None:
        """Render and write the requests captured so far (after each turn of the loop)."""
        pending = self.pending
        if not pending:
            return
        with self._lock:  # another thread's flush takes the same records only once
            taken = pending[:]
            # Only those copied: a pool thread may have appended since, at the end.
            del pending[: len(taken)]
        records = self._records(taken)
        self.sink.write_many(records, INFO)

    def _records(self, taken: Pending) -> list[str]:
        """The records of `taken`: captured requests straight from the capture when the
        format can (each renderer called by name: a compiled function called through a
        Python callable converts its arguments twice), the rest through events."""
        fmt, render, event = self.format, self._render, self.event
        records: list[str] = []
        for item in taken:
            if isinstance(item, dict):
                records.append(render(item))
                continue
            try:
                if fmt == "json":
                    record = captured_json(item)
                elif fmt == "logfmt":
                    record = captured_logfmt(item)
                elif fmt == "combined":
                    record = captured_combined(item)
                else:
                    record = None
            except TypeError:  # the app put something other than text in a field's key
                record = None
            records.append(record if record is not None else render(event(*item)))
        return records

    def reopen(self) -> str | None:
        self.flush()  # what was served before the signal belongs in the old file
        return self.sink.reopen()

    def close(self) -> None:
        self.flush()
        self.sink.close()


_access_logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for log in list(_access_logs):
        log._lock = threading.Lock()
        log.pending.clear()  # the parent's requests are the parent's to write


os.register_at_fork(after_in_child=_reset_after_fork)
