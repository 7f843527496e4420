"""Each log format on each local sink (`-` and a file), against a real wsgid: the exact records.

Every test sends the same four requests (a GET with agent, referer and X-Request-ID; a POST
with a body; a request whose app raises; a malformed request refused with 400) and compares
the records field by field. Only what cannot be known in advance (times, ports, pids,
durations) is matched by pattern. Syslog sinks are in test_logging_syslog.py.
"""

from __future__ import annotations

import json
import os
import pty
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_logging_app import APP, app_args, read_lines, wait_for

from support.server import WorkDir, WsgidServer, free_port

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
CLF = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"
PLACEHOLDERS = {
    "{ts}": ISO,
    "{clf}": CLF,
    "{port}": r"\d{1,5}",
    "{pid}": r"\d+",
    "{n}": r"\d+",
    "{ms}": r"\d+\.\d{3}",
    "{L}": r"\d+\.\d{6}",
    "{any}": r".*",
}
GET_HEADERS = (
    "User-Agent: test-agent/1.0\r\nReferer: http://example.test/from\r\nX-Request-ID: req-0001\r\n"
)


def pattern(template: str) -> re.Pattern[str]:
    """A regex matching `template` exactly, with {ts}, {port}, ... as the only wildcards."""
    parts = re.split("(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + ")", template)
    return re.compile("".join(PLACEHOLDERS.get(p, re.escape(p)) for p in parts))


def assert_line(template: str, line: str) -> None:
    assert pattern(template).fullmatch(line), f"\nexpected: {template}\nactual:   {line}"


def raw(server: WsgidServer, data: bytes) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def body_length(response: bytes) -> int:
    return len(response.partition(b"\r\n\r\n")[2])


def send_the_four_requests(server: WsgidServer) -> dict[str, int]:
    """The requests every format test logs; returns the body sizes the client received."""
    sizes = {}
    head = f"GET /pid?a=1&b=two HTTP/1.1\r\nHost: t\r\n{GET_HEADERS}Connection: close\r\n\r\n"
    r = raw(server, head.encode())
    assert r.startswith(b"HTTP/1.1 200"), r
    sizes["get"] = body_length(r)
    r = raw(
        server,
        b"POST /pid HTTP/1.1\r\nHost: t\r\nX-Request-ID: req-0002\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello",
    )
    assert r.startswith(b"HTTP/1.1 200"), r
    sizes["post"] = body_length(r)
    r = raw(
        server,
        b"GET /boom?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: req-0003\r\nConnection: close\r\n\r\n",
    )
    assert r.startswith(b"HTTP/1.1 500"), r
    assert b"\r\nX-Request-ID: req-0003\r\n" in r, "a 500 carries the request id"
    sizes["boom"] = body_length(r)
    r = raw(server, b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400"), r
    return sizes


def start(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str, *args: str
) -> tuple[WsgidServer, Callable[[], list[str]], Callable[[], list[str]]]:
    """A 1-worker server with both logs on `sink` ("-" or "file"); readers of each log.

    Responses carry the request id (`--request-id-response-header`), so that a 500's id can
    be matched with its log records.
    """
    args = ("--request-id-response-header", "X-Request-ID", *args)
    if sink == "file":
        access_path, error_path = workdir.logs / "access.log", workdir.logs / "error.log"
        server = wsgid(
            APP, *app_args(), "--access-logfile", str(access_path),
            "--error-logfile", str(error_path), *args, workers=1,
        )  # fmt: skip
        return server, lambda: read_lines(access_path), lambda: read_lines(error_path)
    server = wsgid(APP, *app_args(), "--access-logfile", "-", *args, workers=1)
    return server, lambda: server.outlog().splitlines(), lambda: server.errlog().splitlines()


# The harness's readiness probe (`GET /`) as each format writes it.
PROBE = re.compile(r'"path":"/",| path=/ |"GET / HTTP/1\.1"|\|/\|')


def access_records(read: Callable[[], list[str]], count: int) -> list[str]:
    """The access records of the four requests (skipping the harness's readiness probe)."""
    return wait_for(
        lambda: (
            (lines := [ln for ln in read() if not PROBE.search(ln)])
            and len(lines) >= count
            and lines
        ),
        what=f"{count} access records",
    )


SINKS = ["-", "file"]


# --------------------------------------------------------------------------- access formats


@pytest.mark.parametrize("sink", SINKS)
def test_access_json_records_are_exact(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, access, _ = start(wsgid, workdir, sink, "--access-logformat", "json")
    sizes = send_the_four_requests(server)
    lines = access_records(access, 4)
    assert len(lines) == 4, lines
    get, post, boom, bad = lines
    common = '"remote_addr":"127.0.0.1","remote_port":{port},"remote_user":null,'
    assert_line(
        '{"timestamp":"{ts}",' + common + '"method":"GET","path":"/pid","query":"a=1&b=two",'
        '"protocol":"HTTP/1.1","status":200,"bytes_sent":' + str(sizes["get"]) + ","
        '"request_bytes":0,"duration_us":{n},"user_agent":"test-agent/1.0",'
        '"referer":"http://example.test/from","request_id":"req-0001","pid":{pid}}',
        get,
    )
    assert_line(
        '{"timestamp":"{ts}",' + common + '"method":"POST","path":"/pid","query":"",'
        '"protocol":"HTTP/1.1","status":200,"bytes_sent":' + str(sizes["post"]) + ","
        '"request_bytes":5,"duration_us":{n},"user_agent":null,"referer":null,'
        '"request_id":"req-0002","pid":{pid}}',
        post,
    )
    assert_line(
        '{"timestamp":"{ts}",' + common + '"method":"GET","path":"/boom","query":"x=1",'
        '"protocol":"HTTP/1.1","status":500,"bytes_sent":' + str(sizes["boom"]) + ","
        '"request_bytes":0,"duration_us":{n},"user_agent":null,"referer":null,'
        '"request_id":"req-0003","pid":{pid}}',
        boom,
    )
    assert_line(
        '{"timestamp":"{ts}",' + common + '"method":null,"path":null,"query":null,'
        '"protocol":null,"status":400,"bytes_sent":0,"request_bytes":0,"duration_us":0,'
        '"user_agent":null,"referer":null,"request_id":null,"pid":{pid}}',
        bad,
    )
    assert all(json.loads(line) for line in lines)


@pytest.mark.parametrize("sink", SINKS)
def test_access_logfmt_records_are_exact(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, access, _ = start(wsgid, workdir, sink, "--access-logformat", "logfmt")
    sizes = send_the_four_requests(server)
    get, post, boom, bad = access_records(access, 4)
    common = "timestamp={ts} remote_addr=127.0.0.1 remote_port={port} remote_user=null"
    assert_line(
        f'{common} method=GET path=/pid query="a=1&b=two" protocol=HTTP/1.1 status=200 '
        f"bytes_sent={sizes['get']} request_bytes=0 duration_us={{n}} "
        "user_agent=test-agent/1.0 referer=http://example.test/from request_id=req-0001 "
        "pid={pid}",
        get,
    )
    assert_line(
        f'{common} method=POST path=/pid query="" protocol=HTTP/1.1 status=200 '
        f"bytes_sent={sizes['post']} request_bytes=5 duration_us={{n}} user_agent=null "
        "referer=null request_id=req-0002 pid={pid}",
        post,
    )
    assert_line(
        f'{common} method=GET path=/boom query="x=1" protocol=HTTP/1.1 status=500 '
        f"bytes_sent={sizes['boom']} request_bytes=0 duration_us={{n}} user_agent=null "
        "referer=null request_id=req-0003 pid={pid}",
        boom,
    )
    assert_line(
        f"{common} method=null path=null query=null protocol=null status=400 bytes_sent=0 "
        "request_bytes=0 duration_us=0 user_agent=null referer=null request_id=null pid={pid}",
        bad,
    )


@pytest.mark.parametrize("sink", SINKS)
def test_access_console_records_are_exact(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, access, _ = start(wsgid, workdir, sink, "--access-logformat", "console")
    sizes = send_the_four_requests(server)
    get, post, boom, bad = access_records(access, 4)
    assert_line(
        f'{{ts}} 127.0.0.1 "GET /pid?a=1&b=two HTTP/1.1" 200 {sizes["get"]}B {{ms}}ms '
        "request_id=req-0001 user_agent=test-agent/1.0 referer=http://example.test/from "
        "pid={pid}",
        get,
    )
    assert_line(
        f'{{ts}} 127.0.0.1 "POST /pid HTTP/1.1" 200 {sizes["post"]}B {{ms}}ms '
        "request_id=req-0002 pid={pid}",
        post,
    )
    assert_line(
        f'{{ts}} 127.0.0.1 "GET /boom?x=1 HTTP/1.1" 500 {sizes["boom"]}B {{ms}}ms '
        "request_id=req-0003 pid={pid}",
        boom,
    )
    assert_line("{ts} 127.0.0.1 - 400 0B 0.000ms pid={pid}", bad)
    assert not any("\x1b[" in line for line in (get, post, boom, bad)), "no colour off a TTY"


@pytest.mark.parametrize("sink", SINKS)
def test_access_combined_records_are_exact(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, access, _ = start(wsgid, workdir, sink, "--access-logformat", "combined")
    sizes = send_the_four_requests(server)
    get, post, boom, bad = access_records(access, 4)
    assert_line(
        f'127.0.0.1 - - {{clf}} "GET /pid?a=1&b=two HTTP/1.1" 200 {sizes["get"]} '
        '"http://example.test/from" "test-agent/1.0"',
        get,
    )
    assert_line(f'127.0.0.1 - - {{clf}} "POST /pid HTTP/1.1" 200 {sizes["post"]} "-" "-"', post)
    assert_line(f'127.0.0.1 - - {{clf}} "GET /boom?x=1 HTTP/1.1" 500 {sizes["boom"]} "-" "-"', boom)
    assert_line('127.0.0.1 - - {clf} "-" 400 - "-" "-"', bad)


@pytest.mark.parametrize("sink", SINKS)
def test_access_default_is_gunicorn_format(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, access, _ = start(wsgid, workdir, sink)  # no --access-logformat
    sizes = send_the_four_requests(server)
    get, post, boom, bad = access_records(access, 4)
    assert_line(
        f'127.0.0.1 - - {{clf}} "GET /pid?a=1&b=two HTTP/1.1" 200 {sizes["get"]} '
        '"http://example.test/from" "test-agent/1.0"',
        get,
    )
    assert_line(f'127.0.0.1 - - {{clf}} "POST /pid HTTP/1.1" 200 {sizes["post"]} "-" "-"', post)
    assert_line(f'127.0.0.1 - - {{clf}} "GET /boom?x=1 HTTP/1.1" 500 {sizes["boom"]} "-" "-"', boom)
    assert_line('127.0.0.1 - - {clf} "-" 400 0 "-" "-"', bad)  # gunicorn's %(b)s prints 0


@pytest.mark.parametrize("sink", SINKS)
def test_access_gunicorn_atoms(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    fmt = (
        "%(h)s|%(l)s|%(u)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|%(a)s|%(D)s|%(M)s|"
        "%(T)s|%(L)s|%(p)s|%({x-request-id}i)s|%({x-custom}o)s|%({wsgid.request_id}e)s|"
        "%({remote_addr}e)s|%({no-such}i)s|%(zz)s|%(r)s"
    )
    server, access, _ = start(wsgid, workdir, sink, "--access-logformat", fmt)
    r = raw(
        server,
        b"GET /custom?k=v HTTP/1.1\r\nHost: t\r\nX-Request-ID: atoms-1\r\n"
        b"Authorization: Basic YWxpY2U6c2VjcmV0\r\nConnection: close\r\n\r\n",
    )
    assert r.startswith(b"HTTP/1.1 200")
    (line,) = wait_for(lambda: [ln for ln in access() if "atoms-1" in ln], what="atoms line")
    assert_line(
        "127.0.0.1|-|alice|GET|/custom|k=v|HTTP/1.1|200|2|2|-|-|{n}|{n}|0|{L}|<{pid}>|atoms-1|"
        "custom-value|atoms-1|127.0.0.1|-|-|GET /custom?k=v HTTP/1.1",
        line,
    )


# --------------------------------------------------------------------------- error formats


def error_records(read: Callable[[], list[str]]) -> list[str]:
    return wait_for(
        lambda: (lines := read()) and any("req-0003" in ln for ln in lines) and lines,
        what="the app.error record",
    )


@pytest.mark.parametrize("sink", SINKS)
def test_error_log_console_record_with_indented_traceback(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, _, errors = start(wsgid, workdir, sink, "--log-format", "console")
    send_the_four_requests(server)
    lines = error_records(errors)
    at = next(i for i, ln in enumerate(lines) if " app.error " in ln)
    assert_line(
        "{ts} [error] app.error pid={pid} method=GET path=/boom request_id=req-0003", lines[at]
    )
    tb = []
    for line in lines[at + 1 :]:
        if not line.startswith("    "):
            break
        tb.append(line)
    assert tb[0] == "    Traceback (most recent call last):"
    assert tb[-1] == "    RuntimeError: boom x=1"
    rejected = [ln for ln in lines if "request.rejected" in ln]
    assert_line(
        '{ts} [info] request.rejected pid={pid} status=400 reason="{any}" peer=127.0.0.1',
        rejected[0],
    )
    assert_line("{ts} [info] master.started pid={pid} version={any}", lines[0])


@pytest.mark.parametrize("sink", SINKS)
def test_error_log_json_records_are_single_lines(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, _, errors = start(wsgid, workdir, sink, "--log-format", "json")
    send_the_four_requests(server)
    records = [json.loads(line) for line in error_records(errors)]
    (boom,) = [r for r in records if r["event"] == "app.error"]
    assert list(boom) == [
        "timestamp", "level", "event", "pid", "method", "path", "request_id", "exception",
    ]  # fmt: skip
    assert re.fullmatch(ISO, boom["timestamp"])
    assert (boom["level"], boom["method"], boom["path"], boom["request_id"]) == (
        "error", "GET", "/boom", "req-0003",
    )  # fmt: skip
    assert boom["exception"].startswith("Traceback (most recent call last):\n")
    assert boom["exception"].endswith("\nRuntimeError: boom x=1")
    (started,) = [r for r in records if r["event"] == "master.started"]
    assert list(started)[:4] == ["timestamp", "level", "event", "pid"]
    assert started["level"] == "info" and started["workers"] == 1


@pytest.mark.parametrize("sink", SINKS)
def test_error_log_logfmt_records_are_single_lines(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, sink: str
) -> None:
    server, _, errors = start(wsgid, workdir, sink, "--log-format", "logfmt")
    send_the_four_requests(server)
    lines = error_records(errors)
    assert all(line.startswith("timestamp=") for line in lines), lines
    (boom,) = [ln for ln in lines if "event=app.error" in ln]
    assert_line(
        "timestamp={ts} level=error event=app.error pid={pid} method=GET path=/boom "
        'request_id=req-0003 exception="Traceback (most recent call last):\\n{any}'
        '\\nRuntimeError: boom x=1"',
        boom,
    )


def test_log_files_are_created_mode_0640(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    start(wsgid, workdir, "file")
    for name in ("access.log", "error.log"):
        mode = (workdir.logs / name).stat().st_mode & 0o777
        assert mode & 0o007 == 0 and mode & 0o600 == 0o600, f"{name}: {oct(mode)}"


def test_unopenable_log_file_is_a_clear_startup_error(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    missing = Path(workdir.root) / "no-such-dir" / "error.log"
    server = wsgid(APP, *app_args(), "--error-logfile", str(missing), start=False)
    code = server.wait_exit(30)
    assert code == 2, server.errlog()
    assert "error log" in server.errlog() and str(missing) in server.errlog()
    assert "Traceback" not in server.errlog()


def test_log_files_are_opened_before_workers_drop_privileges(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, readable_by_all: Callable[..., Path]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to start as root and run workers as nobody")
    private = workdir.root / "private-logs"
    private.mkdir(mode=0o700)  # only root may create or open files here
    access, error = private / "access.log", private / "error.log"
    # Preloaded: the master (root) imports the app, so the workers need not read it, nor
    # the standard-library modules it uses (this Python may live where nobody cannot read,
    # /root/.pyenv on CI). The copy nobody can read serves the worker's own lookups.
    apps = readable_by_all(Path(__file__).with_name("test_logging_app.py"))
    server = wsgid(
        APP, "--pythonpath", str(apps), "--user", "nobody", "--preload",
        "--access-logfile", str(access), "--access-logformat", "json",
        "--error-logfile", str(error), "--log-format", "json",
        "--max-requests", "1000", "--max-requests-jitter", "100", workers=2,
    )  # fmt: skip
    assert server.get("/boom", headers={"X-Request-ID": "priv-1"}).status == 500
    # Nor can a worker import later what it left for later: a path's %-escapes, the jitter
    # of max_requests (drawn at boot) and an error's reason phrase need nothing new.
    assert server.get("/b%6F%6Fm").status == 500
    records = wait_for(
        lambda: [json.loads(ln) for ln in read_lines(access) if "priv-1" in ln],
        what="the access record of a worker running as nobody",
    )
    assert records[0]["status"] == 500
    wait_for(lambda: any("priv-1" in ln for ln in read_lines(error)), what="its traceback")
    nobody = pwd.getpwnam("nobody").pw_uid
    assert access.stat().st_uid == nobody, "created for the workers, who reopen it on USR1"


@pytest.mark.parametrize("no_color", [False, True])
def test_console_colours_only_on_a_terminal(workdir: WorkDir, no_color: bool) -> None:
    port = free_port()
    main, tty = pty.openpty()
    env = WsgidServer(None, workdir=workdir).environ()
    if no_color:
        env["NO_COLOR"] = "1"
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsgid", APP, *app_args(), "--bind", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=tty, stderr=tty, env=env, cwd=workdir.cwd,
        start_new_session=True,
    )  # fmt: skip
    os.close(tty)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"master.ready" not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(main, 65536)
            except OSError:
                break
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
        os.close(main)
    assert b"master.ready" in seen, seen
    assert (b"\x1b[" in seen) is not no_color, seen
