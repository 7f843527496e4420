"""Both logs into a real rsyslog (the Debian package) on a unix socket, UDP and TCP loopback.

Each test starts its own `rsyslogd -n` with a private configuration (no system socket, no
system files) that writes every record it receives, one line each, as
`facility|severity|hostname|programname|procid|msgid|timereported|msg`. rsyslog escapes control
characters on receipt (a line feed becomes `#012`), so a traceback that arrived as one record
is one line of that file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_logging_app import APP, app_args, ensure_apt, read_lines, wait_for

from support.server import WorkDir, WsgidServer, free_port

FIELDS = ("facility", "severity", "hostname", "program", "procid", "msgid", "time", "msg")
HOSTNAME = socket.gethostname().split(".")[0]


@dataclass
class Record:
    facility: str
    severity: str
    hostname: str
    program: str
    procid: str
    msgid: str
    time: str
    msg: str


@dataclass
class Rsyslog:
    directory: Path
    udp_port: int
    tcp_port: int

    @property
    def socket_3164(self) -> str:
        return f"unix://{self.directory}/log.sock"

    @property
    def socket_5424(self) -> str:
        return f"unix://{self.directory}/log5424.sock"

    def records(self) -> list[Record]:
        found = []
        for line in read_lines(self.directory / "received.log"):
            parts = line.split("|", len(FIELDS) - 1)
            if len(parts) == len(FIELDS):
                found.append(Record(*parts))
        return [r for r in found if r.program != "rsyslogd"]

    def wait(
        self, predicate: Callable[[Record], bool], count: int = 1, what: str = ""
    ) -> list[Record]:
        return wait_for(
            lambda: len(rs := [r for r in self.records() if predicate(r)]) >= count and rs,
            timeout=20,
            what=what or "syslog records",
        )


CONFIG = """
global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{dir}/log.sock" IgnoreTimestamp="off" CreatePath="on")
input(type="imuxsock" Socket="{dir}/log5424.sock" UseSpecialParser="off" ParseHostname="on")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="string" string="%syslogfacility-text%|%syslogseverity-text%|\
%hostname%|%programname%|%procid%|%msgid%|%timereported:::date-rfc3339%|%msg:::drop-last-lf%\\n")
*.* action(type="omfile" file="{dir}/received.log" template="fields")
"""


@pytest.fixture
def rsyslog(workdir: WorkDir) -> Iterator[Rsyslog]:
    problem = ensure_apt("rsyslog")
    if problem:
        pytest.skip(problem)
    directory = workdir.root / "rsyslog"
    directory.mkdir()
    udp, tcp = free_port(), free_port()
    conf = directory / "rsyslog.conf"
    conf.write_text(CONFIG.format(dir=directory, udp=udp, tcp=tcp))
    daemon = "/usr/sbin/rsyslogd"
    check = subprocess.run([daemon, "-N1", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [daemon, "-n", "-f", str(conf), "-i", str(directory / "rsyslogd.pid")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "rsyslogd.stderr", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: (
                (directory / "log.sock").exists()
                and (directory / "log5424.sock").exists()
                and _tcp_open(tcp)
            ),
            what="rsyslogd's sockets",
        )
        yield Rsyslog(directory, udp, tcp)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def recent(stamp: str, slack: float = 120.0) -> bool:
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return abs(when.timestamp() - time.time()) < slack


def serve_and_request(
    wsgid: Callable[..., WsgidServer], *args: str, workers: int = 1
) -> WsgidServer:
    server = wsgid(APP, *app_args(), *args, workers=workers)
    assert server.get("/pid?via=syslog", headers={"X-Request-ID": "sys-1"}).status == 200
    assert server.get("/boom?via=syslog", headers={"X-Request-ID": "sys-2"}).status == 500
    return server


# --------------------------------------------------------------------------- unix socket


def test_unix_socket_rfc3164_by_default_json_records(
    wsgid: Callable[..., WsgidServer], rsyslog: Rsyslog
) -> None:
    server = serve_and_request(
        wsgid, "--error-logfile", rsyslog.socket_3164, "--access-logfile", rsyslog.socket_3164,
        "--log-format", "json", "--access-logformat", "json",
        "--log-syslog-facility", "local3", "--log-syslog-prefix", "shop",
    )  # fmt: skip
    (worker,) = server.worker_pids()
    (access,) = rsyslog.wait(lambda r: "sys-1" in r.msg, what="the access record")
    assert (access.facility, access.severity, access.program, access.procid) == (
        "local3", "info", "shop.access", str(worker),
    )  # fmt: skip
    assert access.hostname == HOSTNAME and recent(access.time)
    assert json.loads(access.msg)["request_id"] == "sys-1"

    (error,) = rsyslog.wait(lambda r: "app.error" in r.msg, what="the traceback record")
    assert (error.facility, error.severity, error.program, error.procid) == (
        "local3", "err", "shop", str(worker),
    )  # fmt: skip
    event = json.loads(error.msg)
    assert event["request_id"] == "sys-2"
    assert (
        event["exception"].startswith("Traceback")
        and "RuntimeError: boom via=syslog" in event["exception"]
    )
    assert sum("RuntimeError" in r.msg for r in rsyslog.records()) == 1, "a traceback is one record"

    (started,) = rsyslog.wait(lambda r: "master.started" in r.msg, what="master.started")
    assert (started.severity, started.procid) == ("info", str(server.pid))


def test_unix_socket_rfc5424_keeps_our_timestamp_hostname_and_msgid(
    wsgid: Callable[..., WsgidServer], rsyslog: Rsyslog
) -> None:
    serve_and_request(
        wsgid, "--error-logfile", rsyslog.socket_5424, "--access-logfile", rsyslog.socket_5424,
        "--log-syslog-format", "rfc5424", "--access-logformat", "combined",
    )  # fmt: skip
    (access,) = rsyslog.wait(lambda r: "/pid?via=syslog" in r.msg and r.msgid == "access")
    assert (access.facility, access.severity, access.program, access.hostname) == (
        "user", "info", "wsgid.access", socket.gethostname()[:255],
    )  # fmt: skip
    assert "." in access.time and recent(access.time), access.time  # sub-second precision
    assert (
        access.msg.startswith("127.0.0.1 - - [")
        and '"GET /pid?via=syslog HTTP/1.1" 200' in access.msg
    )
    errors = rsyslog.wait(lambda r: r.msgid == "error" and "app.error" in r.msg)
    assert len(errors) == 1 and "Traceback" in errors[0].msg and "#012" in errors[0].msg


# --------------------------------------------------------------------------- network


def test_gunicorn_style_log_syslog_over_udp(
    wsgid: Callable[..., WsgidServer], rsyslog: Rsyslog
) -> None:
    server = serve_and_request(
        wsgid, "--log-syslog", "--log-syslog-to", f"udp://127.0.0.1:{rsyslog.udp_port}",
        "--log-syslog-facility", "daemon",
    )  # fmt: skip
    (access,) = rsyslog.wait(lambda r: r.msgid == "access" and "/pid?via=syslog" in r.msg)
    assert (access.facility, access.program, access.hostname) == (
        "daemon", "wsgid.access", socket.gethostname()[:255],
    )  # fmt: skip
    assert recent(access.time)
    # The console format's traceback lines arrive as one record (rsyslog shows LF as #012).
    (error,) = rsyslog.wait(lambda r: r.msgid == "error" and "app.error" in r.msg)
    assert error.severity == "err" and "request_id=sys-2" in error.msg
    assert "#012    Traceback (most recent call last):" in error.msg
    assert error.msg.endswith("RuntimeError: boom via=syslog")
    # --log-syslog adds syslog: the error log still goes to stderr too.
    assert "app.error" in server.errlog()


def test_disable_redirect_access_to_syslog(
    wsgid: Callable[..., WsgidServer], rsyslog: Rsyslog
) -> None:
    serve_and_request(
        wsgid, "--log-syslog", "--log-syslog-to", f"udp://127.0.0.1:{rsyslog.udp_port}",
        "--disable-redirect-access-to-syslog",
    )  # fmt: skip
    rsyslog.wait(lambda r: r.msgid == "error" and "app.error" in r.msg)
    assert not [r for r in rsyslog.records() if r.msgid == "access"]


def test_tcp_octet_counted_records(wsgid: Callable[..., WsgidServer], rsyslog: Rsyslog) -> None:
    target = f"tcp://127.0.0.1:{rsyslog.tcp_port}"
    serve_and_request(
        wsgid, "--error-logfile", target, "--access-logfile", target, "--log-format", "logfmt",
        "--access-logformat", "logfmt", workers=2,
    )  # fmt: skip
    (access,) = rsyslog.wait(lambda r: r.msgid == "access" and "request_id=sys-1" in r.msg)
    assert access.msg.startswith("timestamp=") and access.program == "wsgid.access"
    (error,) = rsyslog.wait(lambda r: r.msgid == "error" and "event=app.error" in r.msg)
    assert 'exception="Traceback (most recent call last):\\n' in error.msg
    assert "#012" not in error.msg, "logfmt keeps the traceback on one line by itself"
