"""Where a log goes, as written in the settings: `-`, a file path, or a syslog address.

Owns: parsing `errorlog`, `accesslog` and `syslog_addr` values into a `Target`, and
`LogTargets`, where each log goes (`RuntimeSettings.log_targets` fills it in).
It does no I/O, so the settings model can use it to reject a bad value at
load time with the same rules the sinks follow at run time.

| value                          | target                                         |
| ------------------------------ | ---------------------------------------------- |
| `-`                            | stderr (error log) / stdout (access log)       |
| `syslog`                       | the local syslog socket, `/dev/log`            |
| `unix:///PATH[#dgram|#stream]` | a syslog daemon's unix socket (gunicorn's form)|
| `udp://HOST[:PORT]`            | syslog over UDP (port 514 by default)          |
| `tcp://HOST[:PORT]`            | syslog over TCP, RFC 6587 octet counting       |
| anything else                  | a file path (write `./syslog` for a file named so) |
"""

from __future__ import annotations

from typing import Literal, NamedTuple

DEV_LOG = "/dev/log"
SYSLOG_PORT = 514


class Target(NamedTuple):
    kind: Literal["stream", "file", "syslog"]
    path: str = ""  # the file, or the unix socket
    transport: Literal["unix", "udp", "tcp", ""] = ""
    host: str = ""
    port: int = 0
    socktype: Literal["dgram", "stream", ""] = ""  # unix only; "" = dgram, else stream

    def __str__(self) -> str:
        if self.kind == "stream":
            return "-"
        if self.kind == "file":
            return self.path
        if self.transport == "unix":
            return f"unix://{self.path}" + (f"#{self.socktype}" if self.socktype else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


class LogTargets(NamedTuple):
    """Where each log goes, and its copy to syslog (`--log-syslog`), if it has one."""

    error: Target  # errorlog
    access: Target | None  # accesslog; None: no access log of its own
    error_syslog: Target | None  # with `syslog`: the error log's copy at syslog_addr
    access_syslog: Target | None  # the access log's, unless disable_redirect_access_to_syslog


def parse(value: str) -> Target:
    """The target `value` names; ValueError with a user-facing reason if it is malformed."""
    if value == "-":
        return Target("stream")
    if value == "syslog":
        return Target("syslog", DEV_LOG, "unix")
    scheme, sep, rest = value.partition("://")
    if not sep:
        if not value.strip():
            raise ValueError("an empty path is not a log destination")
        return Target("file", value)
    if scheme == "unix":
        path, _, socktype = rest.partition("#")
        if not path:
            raise ValueError(f"{value!r}: unix:// must be followed by the socket path")
        if socktype not in ("", "dgram", "stream"):
            raise ValueError(f"{value!r}: the socket type after # must be dgram or stream")
        return Target("syslog", path, "unix", socktype=socktype)  # type: ignore[arg-type]
    if scheme in ("udp", "tcp"):
        host, port = _host_port(rest, value)
        return Target("syslog", transport=scheme, host=host, port=port)  # type: ignore[arg-type]
    raise ValueError(
        f"{value!r}: unknown scheme {scheme!r}; use unix://, udp:// or tcp:// for syslog, "
        f"or a plain file path"
    )


def _host_port(text: str, value: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, after = text[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
        if after and not after.startswith(":"):
            raise ValueError(f"{value!r}: expected :PORT after the IPv6 address")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"{value!r}: the host is missing")
    if not port_text:
        return host, SYSLOG_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)
