"""Hostile requests cannot break a log line or forge a field, in any access format.

The requests carry quotes, backslashes, tabs, percent-encoded newlines, bidi controls, JSON and
logfmt fragments, and bytes that are not UTF-8, in the path, the query, the User-Agent and the
Referer (wsgid's HTTP policy refuses raw non-ASCII bytes in the request target with 400; those
requests are logged too). Every format must give exactly one record per request; JSON records
must parse with `json.loads` and with the real `jq`, with exactly the access keys.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable

import pytest
from test_logging_app import APP, app_args, ensure_apt, read_lines, wait_for

from support.server import WorkDir, WsgidServer
from wsgid.logs.access import ACCESS_KEYS

UGLY_HEADER = (
    b'q"uo\\te\xff\xfe \xc3\xa9 \xe2\x80\xae\tx", "status": 999, "forged": "1 k=v forged=2'
)
HOSTILE: list[bytes] = [
    b'GET /a"b\\c HTTP/1.1\r\nHost: t\r\nUser-Agent: ' + UGLY_HEADER + b"\r\n\r\n",
    b"GET /p%0Aforged%0D%22%5C?x=%0A HTTP/1.1\r\nHost: t\r\nReferer: " + UGLY_HEADER + b"\r\n\r\n",
    b'GET /p?q="x\\y"&k={"a":1} HTTP/1.1\r\nHost: t\r\nUser-Agent: \xff\r\n\r\n',
    b"GET /p\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",  # refused: non-ASCII target (400)
    b"GET /p?\xc3\xa9=\xff HTTP/1.1\r\nHost: t\r\n\r\n",  # refused likewise
    b'POST /p HTTP/1.1\r\nHost: t\r\nReferer: http://x/"\r\nContent-Length: 2\r\n\r\nhi',
    b"GET /p HTTP/1.1\r\nHost: t\r\nUser-Agent: a\r\n folded\r\n\r\n",  # obs-fold: refused
]
FORMATS = {
    "json": "json",
    "logfmt": "logfmt",
    "console": "console",
    "combined": "combined",
    "gunicorn": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    "atoms": '"%(U)s" "%(q)s" "%({user-agent}i)s" "%({referer}i)s" %(s)s',
}
COMBINED = re.compile(r'\S+ - \S+ \[[^\]]+\] "[^"]*" \d{3} (?:\d+|-) "[^"]*" "[^"]*"')
LOGFMT = re.compile(r'([a-z_]+)=(?:"(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def send(server: WsgidServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        if not data.endswith(b"hi"):
            data = data[:-2] + b"Connection: close\r\n\r\n"
        else:
            data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def hostile_records(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, fmt: str
) -> tuple[list[str], list[int]]:
    path = workdir.logs / "access.log"
    server = wsgid(
        APP, *app_args(), "--access-logfile", str(path), "--access-logformat", fmt, workers=1
    )
    wait_for(lambda: read_lines(path), what="the readiness probe's record")
    probe_records = len(read_lines(path))
    statuses = []
    for data in HOSTILE:
        response = send(server, data)
        statuses.append(int(response[9:12]))
    expected = probe_records + len(HOSTILE)
    lines = wait_for(
        lambda: len(ls := read_lines(path)) >= expected and ls, what=f"{expected} records"
    )
    server.stop()
    lines = read_lines(path)
    assert len(lines) == expected, "one record per request, whatever it contains"
    return lines[probe_records:], statuses


@pytest.mark.parametrize("name", list(FORMATS))
def test_hostile_requests_give_one_clean_record_each(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, name: str
) -> None:
    lines, statuses = hostile_records(wsgid, workdir, FORMATS[name])
    assert 400 in statuses and 200 in statuses
    for line in lines:
        assert line.isprintable(), f"control character in {line!r}"
        if name == "json":
            assert tuple(json.loads(line)) == ACCESS_KEYS
        elif name == "logfmt":
            assert tuple(m.group(1) for m in LOGFMT.finditer(line)) == ACCESS_KEYS, line
        elif name in ("combined", "gunicorn"):
            assert COMBINED.fullmatch(line), line
        elif name == "atoms":
            assert re.fullmatch(r'"[^"]*" "[^"]*" "[^"]*" "[^"]*" \d{3}', line), line
    if name == "json":
        records = [json.loads(line) for line in lines]
        assert [r["status"] for r in records] == statuses
        assert records[0]["path"] == '/a"b\\c'
        assert records[0]["user_agent"] == (
            'q"uo\\te\\xff\\xfe é \u202e\tx", "status": 999, "forged": "1 k=v forged=2'
        )
        assert records[1]["path"] == "/p%0Aforged%0D%22%5C"
        assert records[2]["query"] == 'q="x\\y"&k={"a":1}'
        assert records[2]["user_agent"] == "\\xff"
    if name == "atoms":
        assert lines[1].startswith('"/p\\x0Aforged\\x0D\\x22\\x5C" "x=%0A"')


def test_json_records_parse_with_jq(wsgid: Callable[..., WsgidServer], workdir: WorkDir) -> None:
    problem = ensure_apt("jq")
    if problem:
        pytest.skip(problem)
    lines, statuses = hostile_records(wsgid, workdir, "json")
    text = "\n".join(lines) + "\n"
    jq = shutil.which("jq") or "jq"
    result = subprocess.run(
        [jq, "-c", "[keys_unsorted, .status, .user_agent, .path]"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(row) for row in result.stdout.decode().splitlines()]
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        record = json.loads(line)
        assert row == [list(ACCESS_KEYS), record["status"], record["user_agent"], record["path"]]
    assert [row[1] for row in rows] == statuses
