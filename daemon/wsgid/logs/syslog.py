"""The syslog sink: one record per event, framed with a timestamp and a hostname.

Owns: the syslog wire formats and transports. Unlike Python's SysLogHandler
(which gunicorn uses) every record carries its own time and host, and a
record is one datagram or one counted frame whatever it contains, so a
traceback arrives as one record instead of one per line.

Framing (`syslog_format`):
- `rfc5424`: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, the
  timestamp in UTC with microseconds (RFC 5424 §6). MSGID says which log
  (`error` or `access`).
- `rfc3164`: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`, what syslog(3) writes to
  the local socket. systemd-journald, which owns `/dev/log` on most Linux
  systems, and rsyslog's default local-socket parser read only this form.
- `auto` (default): rfc3164 on unix sockets, rfc5424 over the network.

Transports: unix datagram sockets (falling back to stream if the socket is
one, or forced with gunicorn's `#stream`/`#dgram` suffix; a stream record is
NUL-terminated as syslog(3) does), UDP, and TCP with RFC 6587 octet counting
(`LEN SP MSG`), which keeps multi-line records whole. TCP and unix-stream
connections are per process: a forked worker opens its own rather than
interleaving frames on its parent's.

Failures never reach the caller: an unreachable daemon costs a dropped record
and one warning on stderr, and the socket is reconnected on a later record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time

from wsgid.logs import clock
from wsgid.logs.targets import Target
from wsgid.workers import unpatched

FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
FRAMINGS = ("auto", "rfc5424", "rfc3164")

RECONNECT_DELAY = 1.0  # seconds between connection attempts to an unreachable daemon
TCP_TIMEOUT = 1.0  # a stuck collector may delay a request this long, no more
_TRUNCATE = (65000, 8192)  # datagram sizes tried after EMSGSIZE


def _printable(text: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, bounded."""
    clean = "".join(c if "!" <= c <= "~" else "_" for c in text)[:limit]
    return clean or "-"


class SyslogSink:
    """Records to a syslog daemon at `target` with one facility, tag and MSGID."""

    def __init__(
        self, target: Target, *, facility: str, tag: str, msgid: str, framing: str = "auto"
    ) -> None:
        self.target = target
        self.facility = FACILITIES[facility]
        self.tag = _printable(tag, 48)
        self.msgid = _printable(msgid, 32)
        if framing == "auto":
            framing = "rfc3164" if target.transport == "unix" else "rfc5424"
        self.framing = framing
        self.hostname = _printable(socket.gethostname(), 255)
        self._sock: socket.socket | None = None
        self._stream = target.transport == "tcp" or target.socktype == "stream"
        self._owner_pid = 0  # the process that opened _sock
        self._retry_at = 0.0
        self._warned = False

    # framing

    def frame(self, record: str, severity: int, now: float | None = None) -> bytes:
        """The syslog message for `record`, without transport framing."""
        now = time.time() if now is None else now
        pri = self.facility * 8 + severity
        pid = os.getpid()
        if self.framing == "rfc5424":
            head = f"<{pri}>1 {clock.rfc5424(now)} {self.hostname} {self.tag} {pid} {self.msgid} - "
        else:
            head = f"<{pri}>{clock.rfc3164_local(now)} {self.tag}[{pid}]: "
        return (head + record).encode("utf-8", "backslashreplace")

    # transport

    def _connect(self) -> socket.socket:
        target = self.target
        if target.transport == "unix":
            kinds = (
                [socket.SOCK_STREAM] if self._stream else [socket.SOCK_DGRAM, socket.SOCK_STREAM]
            )
            last: OSError | None = None
            for kind in kinds:
                sock = socket.socket(socket.AF_UNIX, kind)
                try:
                    sock.connect(target.path)
                except OSError as exc:
                    sock.close()
                    last = exc
                    if exc.errno == errno.EPROTOTYPE:
                        continue  # a stream socket: try the other kind
                    raise
                self._stream = kind == socket.SOCK_STREAM
                return sock
            assert last is not None
            raise last
        kind = socket.SOCK_STREAM if target.transport == "tcp" else socket.SOCK_DGRAM
        family, _, _, _, address = socket.getaddrinfo(target.host, target.port, 0, kind)[0]
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.settimeout(TCP_TIMEOUT)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    def _socket(self) -> socket.socket | None:
        pid = os.getpid()
        if self._sock is not None and (self._owner_pid == pid or not self._stream):
            return self._sock  # datagram sockets are safely shared with forked children
        if self._sock is not None:
            self._sock = None  # a stream our parent opened: leave it to the parent
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            self._sock = self._connect()
            self._owner_pid = pid
        except OSError as exc:
            self._retry_at = now + RECONNECT_DELAY
            self._warn(exc)
            return None
        return self._sock

    def _warn(self, exc: OSError) -> None:
        if self._warned:
            return
        self._warned = True
        message = (
            f"wsgid: syslog at {self.target} unreachable ({exc.strerror or exc}); "
            f"records are dropped until it is back\n"
        )
        with contextlib.suppress(OSError):
            unpatched.OS_WRITE(2, message.encode("utf-8", "replace"))

    def write(self, record: str, severity: int = 6) -> None:
        message = self.frame(record, severity)
        for attempt in range(2):
            sock = self._socket()
            if sock is None:
                return
            try:
                self._send(sock, message)
                return
            except OSError as exc:
                self._drop_socket()
                if attempt:
                    self._retry_at = time.monotonic() + RECONNECT_DELAY
                    self._warn(exc)

    def _send(self, sock: socket.socket, message: bytes) -> None:
        if not self._stream:
            try:
                sock.send(message)
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:
                    raise
                for size in _TRUNCATE:
                    try:
                        sock.send(message[:size])
                        return
                    except OSError as again:
                        if again.errno != errno.EMSGSIZE:
                            raise
            return
        if self.target.transport == "tcp":
            sock.sendall(b"%d %s" % (len(message), message))  # RFC 6587 §3.4.1
        else:
            sock.sendall(message + b"\0")

    def _drop_socket(self) -> None:
        if self._sock is not None:
            if self._owner_pid == os.getpid() or not self._stream:
                with contextlib.suppress(OSError):
                    self._sock.close()
            self._sock = None

    def write_many(self, records: list[str], severity: int = 6) -> None:
        for record in records:  # one record per datagram or frame, always
            self.write(record, severity)

    def flush(self) -> None:
        pass  # nothing is kept back

    def reopen(self) -> str | None:
        # USR1: reconnect too (a restarted daemon may have a new socket).
        self._drop_socket()
        self._retry_at = 0.0
        self._warned = False
        return None

    def close(self) -> None:
        self._drop_socket()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int | None:
        return self._sock.fileno() if self._sock is not None else None
