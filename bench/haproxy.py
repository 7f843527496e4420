"""HAProxy in front of a server for the scenarios behind a proxy: its configuration, its process.

HAProxy runs in ``mode tcp``: each client connection gets its own connection to the server, so
wrk's keep-alive reaches the server as keep-alive, and the only difference a ``send-proxy-v2``
server line makes is the PROXY v2 header at the start of each connection (and the server's
parsing of it). It counts as the client side: pinned to the client CPU with wrk, one thread.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from bench.layout import CLIENT_CPU, HOST
from bench.processes import free_port, kill_group, pinned, spawn

# The server line's keyword for each PROXY protocol version a server can require.
SEND_PROXY = {"": "", "v2": " send-proxy-v2"}


def config(listen_port: int | str, server_port: int | str, proxy: str) -> str:
    """HAProxy's configuration: ``HOST:listen_port`` forwarded to ``HOST:server_port``.

    ``proxy`` is the PROXY protocol version the server requires ("" for none).
    """
    return (
        "global\n"
        "    nbthread 1\n"
        "defaults\n"
        "    mode tcp\n"
        # A refused connect (the server not listening yet) fails at once instead of after
        # three retries a second apart, so that the start-up poll through HAProxy is quick.
        "    retries 0\n"
        "    timeout connect 5s\n"
        "    timeout client 60s\n"
        "    timeout server 60s\n"
        "frontend front\n"
        f"    bind {HOST}:{listen_port}\n"
        "    default_backend back\n"
        "backend back\n"
        f"    server s {HOST}:{server_port}{SEND_PROXY[proxy]}\n"
    )


def command(cfg: Path | str) -> list[str]:
    """HAProxy's command line (unpinned), in the foreground."""
    return ["haproxy", "-db", "-f", str(cfg)]


@dataclasses.dataclass
class Haproxy:
    """An HAProxy started by us, in its own process group."""

    port: int  # where clients connect
    proc: subprocess.Popen[Any]
    logfile: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        kill_group(self.proc)


def start_haproxy(server_port: int, proxy: str, workdir: Path, name: str) -> Haproxy:
    """Start HAProxy pinned to the client CPU for ``server_port`` (which may not listen yet)."""
    port = free_port()
    cfg = workdir / f"{name}-haproxy.cfg"
    cfg.write_text(config(port, server_port, proxy))
    logfile = workdir / f"{name}-haproxy.log"
    with open(logfile, "wb") as out:
        proc = spawn(pinned(CLIENT_CPU, command(cfg)), out)
    return Haproxy(port, proc, logfile)


def version() -> str:
    """``HAProxy version 2.6.12-1+deb12u4 2026/10/17``, or why there is none."""
    try:
        r = subprocess.run(["haproxy", "-v"], capture_output=True, text=True)
    except OSError:
        return "HAProxy not installed"
    first = (r.stdout.strip().splitlines() or ["HAProxy ?"])[0]
    return first.split(" - ")[0]
