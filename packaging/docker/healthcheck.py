"""Container health check of the wsgid image: is the server answering HTTP?

It probes the addresses wsgid really listens on, read from the running master's own sockets,
so a bind given any way (a flag such as `-b 0.0.0.0:9000`, WSGID_BIND, PORT, a configuration
file, a side listener from `--metrics-bind`) is found without rebuilding the image:

- The master is the process titled `wsgid: master`, its workers `wsgid: worker`. Its
  listening sockets are the socket descriptors of /proc/PID/fd that /proc/PID/net/{tcp,tcp6,
  unix} list as listening. Those its workers hold too are the app's listeners; a TCP one only
  the master holds is its side listener (`metrics_bind`: the workers close it after the fork).
- With a side listener it asks the master's `GET /livez` there and is healthy on 200 only: no
  application code runs, and a busy worker pool does not make a live server look dead.
  Otherwise it sends `GET /` (WSGID_HEALTHCHECK_PATH for another path) to the app's first
  listener, TCP or unix, and is healthy on any HTTP response below 500: the check is about
  the server being up and its workers answering, not about what the app serves at `/`.
- A master with no worker is unhealthy (its listeners cannot be told apart then, and
  nothing would answer the app's traffic).
- Where /proc cannot be read (the check runs as another user than the server's), it falls
  back to the environment: WSGID_METRICS_BIND's first TCP address for `/livez`, else the first
  TCP address of WSGID_BIND, else $PORT, else 8000.

A wildcard address is probed on loopback (`0.0.0.0` as 127.0.0.1, `::` as ::1 then 127.0.0.1).
Runs with the image's Python and the standard library only.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import sys
from dataclasses import dataclass

TIMEOUT = 4.0
_SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")
_TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN
_SO_ACCEPTCON = 0x10000  # the flag /proc/net/unix shows on a listening socket
_SOCK_STREAM = 1


@dataclass(frozen=True)
class Target:
    """Where to probe: TCP hosts and a port, or a unix socket path; and what is healthy."""

    hosts: tuple[str, ...]
    port: int
    unix: str | None
    path: str
    exact: bool  # only 200 is healthy (a side listener's /livez)

    def url(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}{self.path}"
        host = self.hosts[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{self.path}"


class NoServer(Exception):
    """/proc shows wsgid, but nothing to probe (the message says why)."""


def loopback(host: str) -> tuple[str, ...]:
    """Where to reach an address from inside the container."""
    if host in ("", "0.0.0.0"):
        return ("127.0.0.1",)
    if host == "::":
        return ("::1", "127.0.0.1")  # 127.0.0.1 reaches a dual-stack [::] listener too
    return (host,)


# ------------------------------------------------------------------ from the master's sockets


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, title) of every process this check can see."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            title = _read(f"/proc/{name}/cmdline").replace("\0", " ").strip()
            status = _read(f"/proc/{name}/status")
        except OSError:
            continue
        ppid = re.search(r"^PPid:\s+(\d+)", status, re.M)
        found.append((int(name), int(ppid.group(1)) if ppid else 0, title))
    return found


def _socket_fds(pid: int) -> list[int]:
    """The inodes of a process's sockets, in the order of its descriptors.

    PermissionError when this check may not look (another user's process)."""
    entries = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
    inodes = []
    for fd in entries:
        try:
            match = _SOCKET_LINK.fullmatch(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
        if match:
            inodes.append(int(match.group(1)))
    return inodes


def _tcp_address(hex_address: str) -> tuple[str, int]:
    """/proc/net/tcp{,6}'s `ADDR:PORT`: the address in 32-bit words of host byte order."""
    hex_host, hex_port = hex_address.split(":")
    raw = bytes.fromhex(hex_host)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(w[::-1] if sys.byteorder == "little" else w for w in words)
    host = str(ipaddress.ip_address(packed))
    if isinstance(ipaddress.ip_address(packed), ipaddress.IPv6Address):
        mapped = ipaddress.IPv6Address(packed).ipv4_mapped
        host = str(mapped) if mapped is not None else host
    return host, int(hex_port, 16)


def _listening(pid: int) -> dict[int, tuple[str, int] | str]:
    """The listening sockets of `pid`'s network namespace by inode: (host, port) or a path."""
    found: dict[int, tuple[str, int] | str] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = _read(f"/proc/{pid}/net/{table}").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN:
                found[int(fields[9])] = _tcp_address(fields[1])
    try:
        lines = _read(f"/proc/{pid}/net/unix").splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode Path (abstract ones, "@...", are left out)
        listening = len(fields) >= 8 and int(fields[3], 16) & _SO_ACCEPTCON
        if listening and int(fields[4], 16) == _SOCK_STREAM and not fields[7].startswith("@"):
            found[int(fields[6])] = fields[7]
    return found


def from_the_master(path: str) -> Target | None:
    """The target read from the running master's sockets; None if /proc does not tell."""
    processes = _processes()
    masters = [pid for pid, _, title in processes if title.startswith("wsgid: master")]
    if not masters:
        return None
    try:
        for master in sorted(masters):
            mine = _socket_fds(master)
            workers = [
                pid
                for pid, ppid, title in processes
                if ppid == master and title.startswith("wsgid: worker")
            ]
            shared: set[int] = set()
            for worker in workers:
                shared.update(_socket_fds(worker))
            listening = _listening(master)
            sockets = [(inode, listening[inode]) for inode in mine if inode in listening]
            if not sockets:
                continue
            if not workers:
                raise NoServer(f"wsgid master {master} has no worker")
            side = [a for i, a in sockets if i not in shared and isinstance(a, tuple)]
            if side:
                host, port = side[0]
                return Target(loopback(host), port, None, "/livez", True)
            app = [a for i, a in sockets if i in shared]
            if app:
                address = app[0]
                if isinstance(address, str):
                    return Target((), 0, address, path, False)
                return Target(loopback(address[0]), address[1], None, path, False)
    except PermissionError:
        return None  # the server runs as another user: the environment says where it is
    raise NoServer(f"wsgid master {', '.join(map(str, masters))} has no listening socket")


# ------------------------------------------------------------------ from the environment


def tcp_address(variable: str) -> tuple[str, int] | None:
    """The first TCP address of a bind variable."""
    for entry in os.environ.get(variable, "").split(","):
        entry = entry.strip()
        if not entry or entry.startswith(("unix:", "fd://", "systemd:")):
            continue
        host, _, port = entry.rpartition(":")
        if port.isdigit():
            return host.strip("[]"), int(port)
    return None


def from_the_environment(path: str) -> Target:
    side = tcp_address("WSGID_METRICS_BIND")
    if side is not None:
        return Target(loopback(side[0]), side[1], None, "/livez", True)
    host, port = tcp_address("WSGID_BIND") or ("127.0.0.1", int(os.environ.get("PORT") or 8000))
    return Target(loopback(host), port, None, path, False)


# ------------------------------------------------------------------ the probe


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def status_of(target: Target) -> int:
    """The HTTP status the target answers (OSError if none answers)."""
    error: OSError | None = None
    hosts: tuple[str | None, ...] = (None,) if target.unix is not None else target.hosts
    for host in hosts:
        if target.unix is not None:
            conn: http.client.HTTPConnection = _UnixConnection(target.unix)
        else:
            conn = http.client.HTTPConnection(host or "", target.port, timeout=TIMEOUT)
        try:
            conn.request("GET", target.path, headers={"User-Agent": "wsgid-healthcheck"})
            return conn.getresponse().status
        except OSError as exc:
            error = exc
        finally:
            conn.close()
    assert error is not None
    raise error


def main() -> int:
    path = os.environ.get("WSGID_HEALTHCHECK_PATH", "/")
    try:
        target = from_the_master(path) or from_the_environment(path)
    except NoServer as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    try:
        status = status_of(target)
    except (OSError, http.client.HTTPException) as exc:
        print(f"healthcheck: {target.url()}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if status >= 500 or (target.exact and status != 200):
        print(f"healthcheck: {target.url()}: status {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
