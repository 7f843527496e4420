"""Socket activation: wsgid serves the sockets `systemd-socket-activate` passes it.

`systemd-socket-activate` is systemd's own tool for this: it binds the sockets, waits for the
first connection, then execs wsgid with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES set and the
sockets on fds 3 and up, exactly as a `.socket` unit does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support import procs
from support.client import get, poll
from support.load import wait_event, wait_pidfile
from support.server import WsgidServer, free_port
from system.sysd_support import need_tool
from wsgid.exitcodes import ExitCode

PASSED_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONUNBUFFERED", "TMPDIR", "TESTAPP_MARKERS")


def activated(
    wsgid: Callable[..., WsgidServer],
    unix_path: Path,
    *wsgid_args: str,
    names: str | None = "web:ctl",
    start: bool = True,
) -> WsgidServer:
    """wsgid under systemd-socket-activate: TCP 127.0.0.1:<port> is fd 3, `unix_path` fd 4."""
    tool = need_tool("systemd-socket-activate")

    def command(port: int) -> list[str]:
        argv = [tool, "-l", f"127.0.0.1:{port}", "-l", str(unix_path)]
        if names is not None:
            argv.append(f"--fdname={names}")
        # systemd-socket-activate clears the environment: pass on what the harness sets.
        for key in PASSED_ENV:
            argv += ["-E", key]
        return [*argv, sys.executable, "-m", "wsgid", "sleep_app:app", *wsgid_args]

    server = wsgid(None, command=command, start=False)
    # The first connection triggers the exec; wait_ready() makes it.
    if start:
        server.wait_ready(timeout=30)
    return server


def unixget(path: Path, target: str = "/pid") -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def listening_inodes() -> set[int]:
    """Inodes of every listening TCP and unix stream socket on the machine."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    found.add(int(cols[9]))
    with open("/proc/net/unix") as f:
        for line in list(f)[1:]:
            cols = line.split()
            # Flags 00010000 = __SO_ACCEPTCON, Type 0001 = SOCK_STREAM
            if int(cols[3], 16) & 0x10000 and cols[4] == "0001":
                found.add(int(cols[6]))
    return found


def socket_inodes(pid: int) -> dict[int, int]:
    """fd -> socket inode, for the sockets `pid` holds."""
    result = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            result[int(fd)] = int(target[8:-1])
    return result


def test_bare_activation_serves_tcp_and_unix_and_binds_nothing_itself(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    unix_path = sockdir / "web.sock"
    server = activated(wsgid, unix_path, "--workers", "2")
    assert server.get("/pid").status == 200
    status, body = unixget(unix_path)
    assert status == 200 and b'"pid"' in body
    # Every listening socket the master holds is one systemd-socket-activate passed (fds 3, 4).
    held = socket_inodes(server.pid)
    listening = {inode for inode in held.values() if inode in listening_inodes()}
    assert listening == {held[3], held[4]}, held
    log = server.errlog()
    assert "systemd:web" in log or f"127.0.0.1:{server.port}" in log
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        assert var not in _environ(server.worker_pids()[0]), f"{var} leaked to a worker"
    assert server.stop(signal.SIGTERM) == 0
    assert unix_path.exists(), "wsgid unlinked a socket file it did not create"


def test_bind_systemd_name_picks_the_named_socket_and_closes_the_rest(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    unix_path = sockdir / "ctl.sock"
    server = activated(wsgid, unix_path, "--bind", "systemd:web")
    assert server.get("/pid").status == 200
    with pytest.raises(ConnectionRefusedError):
        unixget(unix_path)  # `ctl` was not asked for: not served
    assert "systemd:web" in server.errlog()
    assert server.stop() == 0


def test_bind_systemd_names_in_any_order_serve_both(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    unix_path = sockdir / "ctl.sock"
    server = activated(wsgid, unix_path, "--bind", "systemd:ctl", "--bind", "systemd:web")
    assert server.get("/pid").status == 200
    assert unixget(unix_path)[0] == 200
    assert server.stop() == 0


def test_metrics_bind_systemd_name_takes_that_socket_for_the_health_probes(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    """`metrics_bind = systemd:ctl`: the passed socket named `ctl` answers /livez (the
    master's), the one named `web` the application."""
    unix_path = sockdir / "ctl.sock"
    server = activated(wsgid, unix_path, "--bind", "systemd:web", "--metrics-bind", "systemd:ctl")
    assert server.get("/pid").status == 200
    assert unixget(unix_path, "/livez") == (200, b"ok\n")
    assert "health=systemd:ctl" in server.errlog() or "health=unix:" in server.errlog()
    assert server.stop() == 0
    assert unix_path.exists(), "wsgid unlinked a socket file it did not create"


def test_bare_activation_with_a_side_listener_of_its_own_serves_what_was_passed(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    """Bare activation (no bind) serves every passed socket; a metrics_bind address that was
    not passed is bound by wsgid itself beside them."""
    unix_path = sockdir / "web.sock"
    health = sockdir / "health.sock"
    server = activated(wsgid, unix_path, "--metrics-bind", f"unix:{health}")
    assert server.get("/pid").status == 200
    assert unixget(unix_path)[0] == 200
    assert unixget(health, "/livez") == (200, b"ok\n")
    assert server.stop() == 0
    assert not health.exists(), "wsgid removes the socket file it bound"


def test_bind_fd_number_adopts_that_descriptor(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    unix_path = sockdir / "s.sock"
    server = activated(wsgid, unix_path, "--bind", "fd://4", "--bind", "fd://3", names=None)
    assert server.get("/pid").status == 200
    assert unixget(unix_path)[0] == 200
    assert server.stop() == 0


def test_a_missing_name_is_a_clear_error_naming_what_was_passed(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    unix_path = sockdir / "s.sock"
    server = activated(wsgid, unix_path, "--bind", "systemd:admin", start=False)
    # Trigger the activation; wsgid refuses to start, so the connection just closes.
    sock = poll(lambda: _connect(server.port), timeout=10, what="systemd-socket-activate")
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            sock.recv(100)
    assert server.wait_exit(timeout=30) == ExitCode.LISTEN_FAILED
    err = server.errlog()
    assert "'admin'" in err and "web" in err and "ctl" in err, err
    assert "FileDescriptorName" in err, err


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        return None


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = f.read().split(b"\0")
    return dict(i.decode().split("=", 1) for i in items if b"=" in i)


def test_usr2_under_bare_activation_never_serves_the_side_listener_as_the_app(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    """Bare activation serves every passed socket. After a USR2 whose new configuration drops
    metrics_bind, the side listener the old master hands over must be closed, not served as
    one of the application's sockets (it travels apart: `_WSGID_SIDE_FD`)."""
    config = sockdir / "wsgid.toml"
    side = free_port()
    config.write_text(f'[monitoring]\nmetrics_bind = "127.0.0.1:{side}"\n')
    pidfile = sockdir / "wsgid.pid"
    unix_path = sockdir / "web.sock"
    server = activated(wsgid, unix_path, "-c", str(config), "--pid", str(pidfile))
    assert get(side, "/livez") == (200, b"ok\n")
    config.write_text("")
    server.send_signal(signal.SIGUSR2)
    new_master = wait_pidfile(Path(f"{pidfile}.2"), timeout=30)
    try:
        wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
        assert server.stop(signal.SIGTERM, timeout=20) == 0
        assert unixget(unix_path)[0] == 200, "the new master serves what was passed"
        assert get(server.port, "/pid")[0] == 200
        with pytest.raises(ConnectionRefusedError):
            get(side, "/livez")
    finally:
        if procs.is_alive(new_master):
            os.kill(new_master, signal.SIGINT)
            assert procs.wait_gone([new_master], timeout=20) == []
