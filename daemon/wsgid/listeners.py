"""Listening sockets: parse bind addresses, bind them, or adopt inherited ones.

Owns: turning `bind` entries (`HOST:PORT`, `[V6]:PORT`, `unix:PATH`, `fd://N`,
`systemd:NAME`) into non-blocking listening sockets before any worker is
forked, the socket options of the ones it binds (SO_REUSEPORT with
`reuse_port`), the mode and owner of the unix socket files it creates (`UnixFiles`), the retry
policy when an address is busy, stale unix socket
files, closing (and unlinking) what wsgid itself created, and how many
connections wait in their queues (`queued`, the backlog metric).

Inherited sockets (systemd socket activation, or the old master during a USR2
upgrade) are offered as a pool: a bind entry whose address matches an
inherited socket adopts it instead of binding, so an upgrade never re-binds
and never drops a queued connection. Inherited sockets are never unlinked:
whoever passed them owns them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

BIND_RETRIES = 5
BIND_RETRY_DELAY = 0.5


class ListenerError(Exception):
    """A bind entry is malformed or its address cannot be bound."""


class Inherited(NamedTuple):
    """A listening socket passed in by systemd or by the previous master."""

    sock: socket.socket
    name: str | None = None  # LISTEN_FDNAMES entry, if any
    # True when passed by our own previous master (USR2): its unix socket
    # files are ours to unlink on exit. systemd's are systemd's.
    owned: bool = False


class UnixFiles(NamedTuple):
    """How a unix socket file is created, as gunicorn creates it: bound under the `umask`
    setting (gunicorn's default 0 makes it 0777) and handed to the workers' user and group
    (-1: left as it is), so that nginx, running as another user, can connect."""

    umask: int
    uid: int = -1
    gid: int = -1


class BindSpec(NamedTuple):
    """A parsed bind entry."""

    text: str
    family: socket.AddressFamily
    address: tuple[str, int] | str | None  # None for fd://N and systemd:NAME
    fd: int | None = None
    name: str | None = None  # systemd:NAME


class Listener(NamedTuple):
    """One listening socket and what the environ needs to know about it."""

    sock: socket.socket
    spec: BindSpec
    created: bool  # True if wsgid bound it (and so may unlink a unix socket file)

    @property
    def server(self) -> tuple[str, str]:
        """(SERVER_NAME, SERVER_PORT) for requests arriving here."""
        name = self.sock.getsockname()
        if isinstance(name, tuple):
            return (str(name[0]), str(name[1]))
        return ("localhost", "")

    def fileno(self) -> int:
        return self.sock.fileno()

    def __str__(self) -> str:
        name = self.sock.getsockname()
        if isinstance(name, tuple):
            host = f"[{name[0]}]" if self.sock.family == socket.AF_INET6 else name[0]
            return f"http://{host}:{name[1]}"
        return f"unix:{name}"


def queued(listeners: Sequence[Listener]) -> int | None:
    """Connections waiting in the accept queues of the TCP `listeners` (None: none can say).

    Linux reports a listening socket's queue length in TCP_INFO's `tcpi_unacked` (after
    eight one-byte fields and four 32-bit ones); UNIX listeners have no such report.
    """
    total: int | None = None
    for listener in listeners:
        if listener.sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        try:
            info = listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
        except (OSError, AttributeError):  # not Linux
            continue
        total = (total or 0) + int.from_bytes(info[24:28], sys.byteorder)
    return total


def parse_bind(text: str) -> BindSpec:
    """Parse one bind entry; raise ListenerError naming it when malformed."""
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ListenerError(f"bind {text!r}: unix: needs a socket path")
        return BindSpec(text, socket.AF_UNIX, path)
    if text.startswith("systemd:"):
        name = text[8:]
        if not name:
            raise ListenerError(
                f"bind {text!r}: systemd: needs a socket name (FileDescriptorName=)"
            )
        return BindSpec(text, socket.AF_UNSPEC, None, name=name)
    if text.startswith("fd://"):
        number = text[5:]
        if not number.isdigit():
            raise ListenerError(f"bind {text!r}: fd:// needs a file descriptor number")
        return BindSpec(text, socket.AF_UNIX, None, fd=int(number))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise ListenerError(f"bind {text!r}: expected [IPV6]:PORT")
        return BindSpec(text, socket.AF_INET6, (host, _port(text, port[1:] or "8000")))
    if "/" in text:
        # gunicorn accepts a bare path as a unix socket
        return BindSpec(text, socket.AF_UNIX, text)
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "8000"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return BindSpec(text, family, (host or "0.0.0.0", _port(text, port)))


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenerError(f"bind {text!r}: port must be a number from 0 to 65535")
    return int(port)


def bind_all(
    binds: Sequence[str],
    backlog: int,
    on_retry: Callable[[str, OSError], None] | None = None,
    inherited: Sequence[Inherited] = (),
    reuse_port: bool = False,
    unix_files: UnixFiles | None = None,
    beside_v4_ports: frozenset[int] = frozenset(),
) -> list[Listener]:
    """Open every bind entry, adopting matching inherited sockets.

    With no entries, every inherited socket is served. Inherited sockets no
    entry asked for are closed. On failure everything opened here is closed
    and ListenerError raised. `reuse_port`: the TCP sockets bound here get
    SO_REUSEPORT (inherited ones keep the options they came with). `unix_files`: the
    mode and owner of the unix socket files bound here (None: the process's umask, this
    user).
    """
    pool = list(inherited)
    listeners: list[Listener] = []
    v4_ports = _ipv4_ports(binds) | beside_v4_ports
    try:
        if not binds:
            listeners = [
                Listener(
                    _nonblocking(i.sock),
                    BindSpec(_label(i), i.sock.family, None, name=i.name),
                    i.owned,
                )
                for i in pool
            ]
            return listeners
        for text in binds:
            listeners.append(
                _open(parse_bind(text), backlog, on_retry, pool, reuse_port, unix_files, v4_ports)
            )
    except BaseException:
        close_all(listeners)
        raise
    for unused in pool:
        unused.sock.close()
    return listeners


def bind_one(
    text: str,
    backlog: int,
    pool: list[Inherited],
    on_retry: Callable[[str, OSError], None] | None = None,
) -> Listener:
    """Open one bind entry apart from the others (the side listener), taking the socket it
    names or binds out of `pool` when one was passed in; ListenerError if it cannot."""
    return _open(parse_bind(text), backlog, on_retry, pool, False, None, frozenset())


def rebind(
    current: Sequence[Listener],
    binds: Sequence[str],
    backlog: int,
    on_retry: Callable[[str, OSError], None] | None = None,
    reuse_port: bool = False,
    unix_files: UnixFiles | None = None,
) -> list[Listener]:
    """The listeners for `binds` after a reload: `current` ones kept, added ones bound.

    The listeners no entry names any more are closed, once the added ones are bound: on
    ListenerError nothing has changed.
    """
    keep = {lst.spec.text: lst for lst in current}
    added = [b for b in binds if b not in keep]
    opened = bind_all(added, backlog, on_retry, (), reuse_port, unix_files, _ipv4_ports(binds))
    by_text = {lst.spec.text: lst for lst in opened}
    close_all([lst for text, lst in keep.items() if text not in binds])
    return [keep.get(b) or by_text[b] for b in binds]


def _label(inherited: Inherited) -> str:
    if inherited.name:
        return f"systemd:{inherited.name}"
    return f"fd://{inherited.sock.fileno()}"


def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


def _take_inherited(spec: BindSpec, pool: list[Inherited]) -> Inherited | None:
    """Remove and return the pooled socket `spec` names or whose address it binds."""
    if spec.name is not None:
        for i, item in enumerate(pool):
            if item.name == spec.name:
                return pool.pop(i)
        names = ", ".join(sorted({item.name for item in pool if item.name})) or "none"
        raise ListenerError(
            f"bind {spec.text}: no socket named {spec.name!r} was passed in"
            f" (names passed: {names}); check FileDescriptorName= in the .socket unit"
        )
    if spec.fd is not None:
        for i, item in enumerate(pool):
            if item.sock.fileno() == spec.fd:
                return pool.pop(i)
        return None
    wanted = _resolved(spec)
    for i, item in enumerate(pool):
        if item.sock.family == spec.family and _address_of(item.sock) == wanted:
            return pool.pop(i)
    return None


def _resolved(spec: BindSpec) -> object:
    if isinstance(spec.address, tuple):
        host, port = spec.address
        try:
            info = socket.getaddrinfo(host, port, spec.family, socket.SOCK_STREAM)
        except OSError:
            return spec.address
        return tuple(info[0][4][:2])
    return spec.address


def _address_of(sock: socket.socket) -> object:
    name = sock.getsockname()
    return tuple(name[:2]) if isinstance(name, tuple) else name


def _ipv4_ports(binds: Sequence[str]) -> frozenset[int]:
    """The ports `binds` bind on an IPv4 address (unparsable entries are left to `_open`)."""
    ports = set()
    for text in binds:
        try:
            spec = parse_bind(text)
        except ListenerError:
            continue
        if spec.family == socket.AF_INET and isinstance(spec.address, tuple):
            ports.add(spec.address[1])
    return frozenset(ports)


def _open(
    spec: BindSpec,
    backlog: int,
    on_retry: Callable[[str, OSError], None] | None,
    pool: list[Inherited],
    reuse_port: bool,
    unix_files: UnixFiles | None,
    v4_ports: frozenset[int],
) -> Listener:
    item = _take_inherited(spec, pool) if pool or spec.name else None
    if item is not None:
        return Listener(_nonblocking(item.sock), spec, created=item.owned)
    if spec.fd is not None:
        return Listener(adopt_fd(spec.fd, f"bind {spec.text}"), spec, created=False)
    for attempt in range(BIND_RETRIES):
        try:
            sock = _bind(spec, backlog, reuse_port, unix_files, v4_ports)
            return Listener(sock, spec, created=True)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == BIND_RETRIES - 1:
                raise ListenerError(f"cannot bind {spec.text}: {_reason(spec, exc)}") from None
            if on_retry is not None:
                on_retry(spec.text, exc)
            time.sleep(BIND_RETRY_DELAY)
    raise AssertionError("unreachable")


def _reason(spec: BindSpec, exc: OSError) -> str:
    """Why a bind failed, in words: the errno's name only when there is an errno.

    A name that does not resolve raises `socket.gaierror`, whose number is a
    getaddrinfo code (EAI_NONAME is -2), not an errno; some failures (a unix
    path too long) carry no number at all.
    """
    if isinstance(exc, socket.gaierror) and isinstance(spec.address, tuple):
        return f"cannot resolve {spec.address[0]}: {exc.strerror or exc}"
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    if name is None:
        return str(exc.strerror or exc)
    return f"{exc.strerror} (errno {exc.errno} {name})"


def _bind(
    spec: BindSpec,
    backlog: int,
    reuse_port: bool,
    unix_files: UnixFiles | None,
    v4_ports: frozenset[int],
) -> socket.socket:
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        if spec.family == socket.AF_UNIX:
            assert isinstance(spec.address, str)
            _remove_stale_socket(spec.address)
            _bind_unix(sock, spec.address, unix_files)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                # Another process may bind the same address (a second wsgid taking over);
                # the kernel spreads new connections across all the sockets bound to it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # Wake a worker only once the request's first bytes are there, so
            # the worker that accepts can serve at once (see workers/loop.py).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
            if (
                spec.family == socket.AF_INET6
                and isinstance(spec.address, tuple)
                and spec.address[1] in v4_ports
            ):
                # `[::]:8000` takes IPv4 clients too, as gunicorn's does (the system's
                # default, net.ipv6.bindv6only), unless an IPv4 address binds the same port
                # beside it (`0.0.0.0:8000` and `[::]:8000`, as nginx's pair is written).
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(spec.address)  # type: ignore[arg-type]
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(sock: socket.socket, path: str, files: UnixFiles | None) -> None:
    if files is None:
        sock.bind(path)
        return
    # The umask is the process's for the time of the bind only: the files the app and the
    # logs create keep the one wsgid was started with (systemd's UMask=, the shell's).
    previous = os.umask(files.umask)
    try:
        sock.bind(path)
    finally:
        os.umask(previous)
    if files.uid != -1 or files.gid != -1:
        os.chown(path, files.uid, files.gid)


def _remove_stale_socket(path: str) -> None:
    """Unlink a leftover socket file nobody listens on; refuse anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: left by a process that died
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process is listening on {path}")


def adopt_fd(fd: int, label: str) -> socket.socket:
    """Wrap an inherited fd; it must be a listening stream socket.

    `label` says where the fd came from in error messages (`bind fd://3`,
    `LISTEN_FDS`).
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ListenerError(f"{label}: fd {fd} is not a socket ({exc.strerror})") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise ListenerError(f"{label}: fd {fd} is not a listening stream socket")
    sock.setblocking(False)
    return sock


def close_all(listeners: Sequence[Listener], unlink: bool = True) -> None:
    """Close listeners; unlink unix socket files wsgid created (if `unlink`)."""
    for listener in listeners:
        path = listener.sock.getsockname() if listener.sock.family == socket.AF_UNIX else None
        listener.sock.close()
        if unlink and listener.created and isinstance(path, str) and path:
            # Gone already, or its directory re-owned under us (systemd-tmpfiles): a file left
            # behind is a stale socket the next start replaces; the rest of a stop must run.
            with contextlib.suppress(OSError):
                os.unlink(path)
