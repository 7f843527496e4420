"""Escaping and rendering of log records, in-process: nothing a client sends escapes its field."""

from __future__ import annotations

import json
import os
import re
import traceback
from typing import Any

import pytest

from wsgid.access_formats import GUNICORN_FORMAT
from wsgid.http.request import Request
from wsgid.logs import access, escape, render
from wsgid.logs.atoms import AtomFormat, check
from wsgid.logs.clock import clf_local, iso_utc, rfc3164_local, rfc5424

NASTY = [
    'quote"in',
    "back\\slash",
    "new\nline",
    "cr\rlf",
    "tab\there",
    "nul\x00byte",
    "esc\x1b[31mred",
    "del\x7f",
    "latin1 \xe9\xff\xfe",  # bytes as latin-1: é is not UTF-8 here, \xff never is
    "utf8 \xc3\xa9",  # the UTF-8 bytes of é, as latin-1 text
    "bidi \xe2\x80\xae",  # U+202E RIGHT-TO-LEFT OVERRIDE as UTF-8 bytes
    'k=v" forged="1',
    '", "forged": "1',
    "",
]


# --------------------------------------------------------------------------- escape


@pytest.mark.parametrize("text", NASTY)
def test_clf_escaping_leaves_only_printable_ascii_without_quotes(text: str) -> None:
    out = escape.clf(text)
    assert out.isascii() and out.isprintable()
    assert '"' not in out
    assert "\\" not in out.replace("\\x", "")


def test_clf_escapes_like_nginx() -> None:
    assert escape.clf('a"b\\c\nd\xe9') == "a\\x22b\\x5Cc\\x0Ad\\xE9"
    assert escape.clf("plain/path?q=1") == "plain/path?q=1"
    assert escape.clf("\u20ac") == "\\xE2\\x82\\xAC"  # beyond latin-1: its UTF-8 bytes


def test_client_text_decodes_utf8_and_shows_other_bytes() -> None:
    assert escape.client_text("utf8 \xc3\xa9") == "utf8 é"
    assert escape.client_text("bad \xff\xfe") == "bad \\xff\\xfe"
    assert escape.client_text("ascii") == "ascii"
    assert escape.client_text("already \u20ac") == "already \u20ac"


@pytest.mark.parametrize("text", NASTY)
def test_logfmt_values_stay_on_one_line_and_in_one_field(text: str) -> None:
    out = escape.logfmt(escape.client_text(text))
    assert "\n" not in out and "\r" not in out and out.isprintable()
    if " " in out or "=" in out or '"' in out:
        assert re.fullmatch(r'"(?:[^"\\]|\\.)*"', out), out


def test_logfmt_quotes_only_when_needed() -> None:
    assert escape.logfmt("abc") == "abc"
    assert escape.logfmt("a b") == '"a b"'
    assert escape.logfmt("") == '""'
    assert escape.logfmt('a"b\n') == '"a\\"b\\n"'
    assert escape.logfmt("\u202e") == '"\\u202e"'


def test_keys_are_restricted() -> None:
    assert escape.key("request_id") == "request_id"
    assert escape.key("a b=c\n") == "a_b_c_"
    assert escape.key("") == "_"


# --------------------------------------------------------------------------- clock


def test_timestamps(utc: None) -> None:
    now = 1_796_000_000.123456  # 2026-11-30T00:53:20.123456Z
    assert iso_utc(now) == "2026-11-30T00:53:20.123Z"
    assert rfc5424(now) == "2026-11-30T00:53:20.123456Z"
    assert clf_local(now) == "30/Nov/2026:00:53:20 +0000"
    assert rfc3164_local(now) == "Nov 30 00:53:20"
    assert rfc3164_local(1_788_000_000) == "Aug 29 10:40:00"


# --------------------------------------------------------------------------- error renderers


def event(**kw: Any) -> dict[str, Any]:
    base = {"event": "app.error", "level": "error", "timestamp": "2026-11-30T00:53:20.123Z"}
    return {**base, **kw}


def test_json_renderer_orders_and_escapes() -> None:
    line = render.render_json(None, "error", event(pid=1, path='/a"\n', exception="Tb\nX: y"))
    assert line.isascii() and "\n" not in line
    assert list(json.loads(line)) == ["timestamp", "level", "event", "pid", "path", "exception"]


def test_json_renderer_survives_odd_values() -> None:
    line = render.render_json(None, "info", event(nan=float("nan"), obj=object(), d={1: 2}))
    data = json.loads(line)
    assert data["nan"] == "nan" and data["d"] == {"1": 2}


def test_console_renderer_indents_blocks_so_no_line_can_pass_for_a_record() -> None:
    forged = "2026-11-30T00:53:20.123Z [info] forged event"
    out = render.console_renderer(False)(
        None, "error", event(pid=1, exception=f"Traceback\nValueError: x\n{forged}\x1b[2J")
    )
    first, *rest = out.split("\n")
    assert first == "2026-11-30T00:53:20.123Z [error] app.error pid=1"
    assert rest == ["    Traceback", "    ValueError: x", f"    {forged}\\u001b[2J"]


def test_console_renderer_shows_a_multi_line_error_as_a_block_and_a_one_line_one_as_a_pair() -> (
    None
):
    text = "app 'x:app': importing failed:\n  File \"x.py\", line 1\nSyntaxError: oops"
    out = render.console_renderer(False)(None, "error", event(pid=1, error=text))
    assert out.split("\n") == [
        "2026-11-30T00:53:20.123Z [error] app.error pid=1",
        "    app 'x:app': importing failed:",
        '      File "x.py", line 1',
        "    SyntaxError: oops",
    ]
    one = render.console_renderer(False)(None, "error", event(pid=1, error="refused"))
    assert one == "2026-11-30T00:53:20.123Z [error] app.error pid=1 error=refused"


def test_console_colours_only_when_asked() -> None:
    plain = render.console_renderer(False)(None, "info", event(level="info"))
    coloured = render.console_renderer(True)(None, "info", event(level="info", k=1))
    assert "\x1b[" not in plain and "\x1b[32minfo" in coloured


def _failed() -> ValueError:
    try:
        raise ValueError("boom")
    except ValueError as e:
        return e


@pytest.mark.parametrize("form", ["exception", "tuple", "true"])
def test_exc_info_becomes_the_traceback_as_text_in_each_form_a_logger_is_given_it(
    form: str,
) -> None:
    exc = _failed()
    if form == "true":  # log.exception(...) inside an except block: the exception handled
        try:
            raise exc
        except ValueError:
            event = render.format_exc_info(None, "error", {"exc_info": True})
    else:
        given = exc if form == "exception" else (ValueError, exc, exc.__traceback__)
        event = render.format_exc_info(None, "error", {"exc_info": given})
    assert "exc_info" not in event
    # Python's own text of it, without the last newline (a renderer ends the record).
    assert event["exception"] == "".join(traceback.format_exception(exc)).rstrip("\n")
    assert event["exception"].endswith('raise ValueError("boom")\nValueError: boom')


@pytest.mark.parametrize("given", [None, False, True, (None, None, None)])
def test_exc_info_without_an_exception_adds_no_key(given: Any) -> None:
    # true outside an except block: there is no exception to show
    assert render.format_exc_info(None, "error", {"exc_info": given}) == {}


@pytest.mark.parametrize(
    ("method", "level"),
    [("info", "info"), ("warning", "warning"), ("warn", "warning"), ("exception", "error")],
)
def test_the_level_is_the_logging_method_by_its_standard_name(method: str, level: str) -> None:
    assert render.add_log_level(None, method, {}) == {"level": level}


def test_logfmt_renderer_one_line() -> None:
    out = render.render_logfmt(None, "error", event(path="a b", exception="x\ny"))
    assert out == (
        'timestamp=2026-11-30T00:53:20.123Z level=error event=app.error path="a b" '
        'exception="x\\ny"'
    )


# --------------------------------------------------------------------------- access formats


def a_request(path: bytes = b"/p", query: bytes = b"q=1") -> Request:
    req = Request()
    req.method, req.path, req.query, req.body_received = "GET", path, query, 7
    return req


class Capture:
    def __init__(self) -> None:
        self.records: list[str] = []

    def write(self, record: str, severity: int = 6) -> None:
        self.records.append(record)

    def write_many(self, records: list[str], severity: int = 6) -> None:
        self.records.extend(records)

    def flush(self) -> None:
        pass

    def reopen(self) -> None:
        return None

    def close(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> None:
        return None


def log_one(fmt: str, req: Request | None = None, **environ: str) -> str:
    sink = Capture()
    env = {"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555", "wsgid.request_id": "rid1"}
    env.update(environ)
    log = access.AccessLog(sink, fmt)
    log.request(req or a_request(), 200, 13, env, [("X-Out", 'o"ut')], 1_234_567)
    assert sink.records == [], "rendered when the worker's loop turn ends"
    log.flush()
    (record,) = sink.records
    return record


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch, utc: None) -> None:
    monkeypatch.setattr("wsgid.logs.access.time.time", lambda: 1_796_000_000.5)


def test_access_json_event(fixed_time: None) -> None:
    line = log_one("json", HTTP_USER_AGENT="ua", HTTP_REFERER="ref")
    assert line == (
        '{"timestamp":"2026-11-30T00:53:20.500Z","remote_addr":"10.0.0.1","remote_port":5555,'
        '"remote_user":null,"method":"GET","path":"/p","query":"q=1","protocol":"HTTP/1.1",'
        '"status":200,"bytes_sent":13,"request_bytes":7,"duration_us":1234567,"user_agent":"ua",'
        '"referer":"ref","request_id":"rid1","pid":' + str(os.getpid()) + "}"
    )


@pytest.mark.parametrize("text", NASTY)
def test_access_json_cannot_be_forged(text: str) -> None:
    req = a_request(path=b"/" + text.encode("latin-1"), query=text.encode("latin-1"))
    line = log_one("json", req, HTTP_USER_AGENT=text, HTTP_REFERER=text, REMOTE_USER=text)
    assert line.isascii() and "\n" not in line and "\r" not in line
    data = json.loads(line)
    assert tuple(data) == access.ACCESS_KEYS
    assert data["user_agent"] == escape.client_text(text)
    assert data["path"] == "/" + escape.client_text(text)


@pytest.mark.parametrize("text", NASTY)
def test_access_logfmt_cannot_be_forged(text: str) -> None:
    req = a_request(path=b"/" + text.encode("latin-1"), query=text.encode("latin-1"))
    line = log_one("logfmt", req, HTTP_USER_AGENT=text, HTTP_REFERER=text)
    assert "\n" not in line and "\r" not in line and line.isprintable()
    keys = re.findall(r'(?:^| )([a-z_]+)=(?:"(?:[^"\\]|\\.)*"|[^ "]*)', line)
    assert tuple(keys) == access.ACCESS_KEYS, line


COMBINED = re.compile(r'(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"')


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("fmt", ["combined", GUNICORN_FORMAT])
def test_access_combined_fields_cannot_be_broken(text: str, fmt: str) -> None:
    req = a_request(path=b"/" + text.encode("latin-1"), query=text.encode("latin-1"))
    line = log_one(fmt, req, HTTP_USER_AGENT=text, HTTP_REFERER=text, RAW_URI="/" + text)
    assert line.isascii() and line.isprintable(), line
    match = COMBINED.fullmatch(line)
    assert match, line
    assert match.group(7) == (escape.clf(text) or "-")


def test_access_combined_exact(fixed_time: None) -> None:
    line = log_one("combined", HTTP_USER_AGENT="curl/8", HTTP_AUTHORIZATION="Basic Ym9iOng=")
    assert (
        line
        == '10.0.0.1 - bob [30/Nov/2026:00:53:20 +0000] "GET /p?q=1 HTTP/1.1" 200 13 "-" "curl/8"'
    )


def test_access_gunicorn_atoms(fixed_time: None) -> None:
    fmt = "%(t)s %(D)s %(M)s %(T)s %(L)s %({x-out}o)s %({x-in}i)s %({REMOTE_PORT}e)s %(x)s %(D)d"
    line = log_one(fmt, HTTP_X_IN="in")
    assert line == (
        "[30/Nov/2026:00:53:20 +0000] 1234567 1234 1 1.234567 o\\x22ut in 5555 - 1234567"
    )


def test_access_atom_format_check() -> None:
    check(GUNICORN_FORMAT)
    check("%(D)d %(h)s")
    with pytest.raises(ValueError):
        check("%(h)s %")
    assert AtomFormat("%(h)s").getters.keys() == {"h"}


def test_access_rejected_events() -> None:
    sink = Capture()
    log = access.AccessLog(sink, "json")
    log.rejected({"REMOTE_ADDR": "10.0.0.2", "REMOTE_PORT": "1"}, 431)
    data = json.loads(sink.records[0])
    assert (data["status"], data["method"], data["remote_addr"]) == (431, None, "10.0.0.2")


def test_remote_user() -> None:
    assert access.remote_user({"REMOTE_USER": "u"}) == "u"
    assert access.remote_user({"HTTP_AUTHORIZATION": "Basic YWxpY2U6cHc="}) == "alice"
    assert access.remote_user({"HTTP_AUTHORIZATION": "Basic !!!"}) is None
    assert access.remote_user({"HTTP_AUTHORIZATION": "Bearer x"}) is None


@pytest.mark.parametrize(
    "text",
    [*NASTY, "", "0", "plain", "with space", "k=v", "del\x7f", "tilde~", "\x7f", " ", "="],
)
def test_access_field_escapes_are_client_text_then_the_format_escape(text: str) -> None:
    """`_js` and `_lf` take shortcuts for the usual value (printable ASCII): whatever the
    text, each must give what decoding it and escaping it the plain way gives."""
    decoded = escape.client_text(text)
    assert access._js(text) == json.encoder.encode_basestring_ascii(decoded)
    assert access._lf(text) == escape.logfmt(decoded)


CAPTURED_RENDERERS = {
    "json": access.captured_json,
    "logfmt": access.captured_logfmt,
    "combined": access.captured_combined,
}


@pytest.mark.parametrize("fmt", ["json", "logfmt", "combined"])
@pytest.mark.parametrize("text", [*NASTY, "", "0"])
def test_access_captured_path_writes_what_the_event_path_writes(fmt: str, text: str) -> None:
    """The named formats render a served request straight from what was captured, without its
    event dict: the record must be the one the generic path (event → processors) writes."""
    log = access.AccessLog(Capture(), fmt)
    raw = text.encode("latin-1")
    environs: list[dict[str, str]] = [
        {"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555", "wsgid.request_id": "rid1"},
        {"REMOTE_ADDR": text, "REMOTE_PORT": "0042", "HTTP_USER_AGENT": text},
        {"REMOTE_ADDR": "::1", "REMOTE_PORT": text, "HTTP_REFERER": text, "REMOTE_USER": text},
        {"REMOTE_ADDR": "", "HTTP_AUTHORIZATION": "Basic Ym9iOng=", "wsgid.request_id": text},
        {"REMOTE_PORT": "1"},  # an app that deleted REMOTE_ADDR
    ]
    for environ in environs:
        for req in (a_request(), a_request(path=b"/" + raw, query=raw)):
            captured: access.Captured = (1_796_000_000.5, req, 404, 0, environ, [], 17)
            fast = CAPTURED_RENDERERS[fmt](captured)
            assert fast is not None, (environ, req.path)
            assert fast == log._render(log.event(*captured)), (environ, req.path)


@pytest.mark.parametrize("fmt", ["json", "logfmt", "combined"])
@pytest.mark.parametrize("port", ["\xb2", "\u0663", "1\u0663", "-1", " 80", "0x50", ""])
def test_access_a_remote_port_that_is_not_ascii_digits_is_logged_as_none(
    fmt: str, port: str
) -> None:
    """An app may set REMOTE_PORT to anything: `isdigit` takes superscripts (which `int()`
    refuses) and `int()` other scripts' digits, which would be a bare token in JSON."""
    sink = Capture()
    log = access.AccessLog(sink, fmt)
    environ = {"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": port}
    captured: access.Captured = (1_796_000_000.5, a_request(), 200, 2, environ, [], 17)
    generic = log._render(log.event(*captured))
    assert CAPTURED_RENDERERS[fmt](captured) == generic
    log.rejected(environ, 400)
    log.request(a_request(), 200, 2, environ, [], 17)
    log.flush()
    assert len(sink.records) == 2
    if fmt == "json":
        assert [json.loads(r)["remote_port"] for r in sink.records] == [None, None]
    elif fmt == "logfmt":
        assert all(" remote_port=null " in r for r in sink.records)


@pytest.mark.parametrize("fmt", ["json", "logfmt", "combined"])
@pytest.mark.parametrize(
    "key", ["REMOTE_ADDR", "HTTP_USER_AGENT", "HTTP_REFERER", "wsgid.request_id", "REMOTE_USER"]
)
def test_access_an_environ_field_the_app_set_to_bytes_or_a_number_is_logged_as_text(
    fmt: str, key: str
) -> None:
    """An app may replace what wsgid put in the environ with any object: its record is
    written as if the field held that object's text (bytes: their latin-1 text, as PEP 3333
    holds request text; anything else: what `str()` prints), and so are the batch's others."""
    sink = Capture()
    log = access.AccessLog(sink, fmt)
    values: list[object] = [b'caf\xc3\xa9 "x"', 42, b"", ["a"]]
    texts = ['caf\xc3\xa9 "x"', "42", "", "['a']"]
    for value in values:
        environ = {"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555", key: value}
        log.request(a_request(), 200, 2, environ, [], 17)
    log.request(a_request(), 204, 0, {"REMOTE_ADDR": "10.0.0.9"}, [], 1)
    captured = [item for item in log.pending if not isinstance(item, dict)]
    log.flush()
    assert len(sink.records) == len(values) + 1, sink.records
    for record, item, text in zip(sink.records, captured, [*texts, None], strict=True):
        now, req, status, sent, environ, headers, dur = item
        if text is not None:
            environ = {**environ, key: text}
        expected = CAPTURED_RENDERERS[fmt]((now, req, status, sent, environ, headers, dur))
        assert record.rstrip("\n") == expected, (environ, record)
    if fmt == "json" and key == "HTTP_USER_AGENT":
        assert json.loads(sink.records[0])["user_agent"] == 'café "x"'


def test_a_gunicorn_format_writes_a_dash_for_every_field_of_a_request_refused_unparsed() -> None:
    sink = Capture()
    log = access.AccessLog(sink, "%(m)s %(U)s q=%(q)s %(H)s %(s)s")
    log.rejected({"REMOTE_ADDR": "10.0.0.2", "REMOTE_PORT": "1"}, 400)
    assert sink.records[0].rstrip("\n") == "- - q=- - 400"
