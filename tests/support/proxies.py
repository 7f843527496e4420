"""Real HAProxy and nginx processes on loopback in front of wsgid, configured from the docs.

Owns:
- `snippet(name)`: the block marked `<!-- snippet: NAME -->` in docs/behind-a-proxy.md
  (support/doc_snippets.py), so the tests run the configurations users copy, not look-alikes;
- `Proxies` (the `proxies` fixture): one test's proxies. It replaces the page's placeholder
  addresses and paths (and refuses any other address or system path) with free loopback
  ports and files in its own directory, writes a self-signed certificate when a block names
  one, wraps a block in a minimal haproxy.cfg or nginx.conf whose every path lies in that
  directory, starts the proxy in the foreground in its own session, and waits until it
  listens: HAProxy once its stats socket answers (it binds every listener before it serves
  that socket), nginx once its pid file names it (written after its listeners are bound).
  `close()` stops them, kills what is left of their process groups, and removes the
  directory;
- `HAProxy.servers()`: the backend servers' state from the stats socket (`show stat`), and
  `HAProxy.checked()` a server's once its first health check is judged;
- `serve()`: wsgid serving the echo app with one of the page's TOML blocks; `curl()`: a
  request from the client's own address, `CLIENT`, which differs from the proxies' 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from support import doc_snippets, procs
from support.client import poll
from support.echo import ECHO_APP, Seen
from support.kinds import kind_args
from support.server import REPO_ROOT, WsgidServer, free_port

DOC = REPO_ROOT / "docs" / "behind-a-proxy.md"
# The client's source address: inside 127.0.0.0/8, so that it differs from the proxies'
# (the kernel gives their connections to 127.0.0.1 the source 127.0.0.1).
CLIENT = "127.0.0.2"
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# What the page's blocks are written with (its "Configurations" section lists them).
PROXY_HTTP = "0.0.0.0:80"
PROXY_HTTPS = "0.0.0.0:443"
WSGID_TCP = "127.0.0.1:8000"
WSGID_UNIX = "/run/wsgid/wsgid.sock"
CERT = "/etc/ssl/certs/site.crt"
KEY = "/etc/ssl/private/site.key"
CERT_AND_KEY = "/etc/ssl/private/site.pem"
# Left in a block after the placeholders are replaced, these would be an address or a path
# the tests do not replace: a port open beyond loopback, a file of the machine's.
_UNREPLACED = re.compile(r"0\.0\.0\.0|\[::\]|/etc/|/run/|/var/")

P = TypeVar("P", bound="ProxyProcess")

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def snippets() -> dict[str, str]:
    """Every marked block of the page, by name."""
    return doc_snippets.snippets(DOC)


def snippet(name: str) -> str:
    return doc_snippets.snippet(DOC, name)


class ProxyProcess(ABC):
    """One proxy running in the foreground in its own session, its output in `log_path`."""

    def __init__(self, name: str, argv: list[str], directory: Path) -> None:
        self.name = name
        self.argv = argv
        self.directory = directory
        self.log_path = directory / f"{name}.output"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @abstractmethod
    def ready(self) -> bool:
        """Whether it listens on every address of its configuration."""

    def wait_ready(self) -> None:
        """Poll `ready` until it holds; fail with the proxy's output if it exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} while starting\n"
                    f"--- argv: {self.argv}\n--- output:\n{self.log()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} not ready after {START_TIMEOUT}s\n--- output:\n{self.log()}"
                )
            time.sleep(0.02)

    def stop(self) -> list[str]:
        """TERM (a fast stop for both proxies), then anything left of its group is a problem."""
        problems: list[str] = []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name} ignored TERM for {STOP_TIMEOUT}s")
                procs.kill_group(self.proc.pid)
                self.proc.wait(timeout=STOP_TIMEOUT)
        left = procs.members(self.proc.pid)
        if left:
            problems.append(f"{self.name} left processes running: {procs.describe(left)}")
            procs.kill_group(self.proc.pid)
            procs.wait_gone([st.pid for st in left], timeout=STOP_TIMEOUT)
        return problems


class HAProxy(ProxyProcess):
    def __init__(self, config: Path, directory: Path, stats: Path) -> None:
        super().__init__("haproxy", ["haproxy", "-db", "-f", str(config)], directory)
        self.stats = stats

    def command(self, line: str) -> str:
        """One command on the stats socket, and its whole answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.stats))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):  # HAProxy closes after one command
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def ready(self) -> bool:
        try:
            return "Name: HAProxy" in self.command("show info")
        except OSError:
            return False

    def checked(self, server: str, timeout: float = 15.0) -> dict[str, str]:
        """The `show stat` row of "backend/server" once its first health check is judged."""

        def judged() -> dict[str, str] | None:
            row = self.servers()[server]
            status = row["check_status"].removeprefix("* ")  # "* ": a check is under way
            return None if status in ("", "INI") else dict(row, check_status=status)

        return poll(judged, timeout, what=f"HAProxy's first health check of {server}")

    def servers(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the backend servers, by "backend/server"."""
        text = self.command("show stat").removeprefix("# ")
        rows = csv.DictReader(text.splitlines())
        return {
            f"{row['pxname']}/{row['svname']}": row
            for row in rows
            if row["svname"] not in ("FRONTEND", "BACKEND")
        }


class Nginx(ProxyProcess):
    def __init__(self, config: Path, directory: Path, pidfile: Path) -> None:
        argv = [
            "nginx",
            "-p", f"{directory}/",
            "-e", str(directory / "error.log"),  # else it opens the packaged path first
            "-c", str(config),
            "-g", "daemon off;",
        ]  # fmt: skip
        super().__init__("nginx", argv, directory)
        self.pidfile = pidfile

    def ready(self) -> bool:
        try:
            return self.pidfile.read_text().strip() == str(self.proc.pid)
        except FileNotFoundError:
            return False


class Proxies:
    """The proxies of one test, with the ports and files the page's placeholders become."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = root / "proxies"
        self.directory.mkdir()
        self.http_port = free_port()
        self.https_port = free_port()
        self.unix_socket = root / "run" / "wsgid.sock"
        self.unix_socket.parent.mkdir()
        self.running: list[ProxyProcess] = []
        self._cert: tuple[Path, Path, Path] | None = None

    def url(self, scheme: str = "http") -> str:
        port = self.https_port if scheme == "https" else self.http_port
        return f"{scheme}://127.0.0.1:{port}"

    def render(self, text: str, wsgid_port: int = 0) -> str:
        """`text` with every placeholder replaced; wsgid listens on `wsgid_port`."""
        values = {
            PROXY_HTTP: f"127.0.0.1:{self.http_port}",
            PROXY_HTTPS: f"127.0.0.1:{self.https_port}",
            WSGID_UNIX: str(self.unix_socket),
        }
        if WSGID_TCP in text:
            assert wsgid_port, "the block names wsgid's TCP listener: give its port"
            values[WSGID_TCP] = f"127.0.0.1:{wsgid_port}"
        if any(name in text for name in (CERT, KEY, CERT_AND_KEY)):
            cert, key, both = self.certificate()
            values.update({CERT: str(cert), KEY: str(key), CERT_AND_KEY: str(both)})
        # Whole placeholders only: 0.0.0.0:8080 is not 0.0.0.0:80 followed by "80".
        pattern = re.compile("(" + "|".join(map(re.escape, values)) + r")(?![\w.])")
        left = _UNREPLACED.search(pattern.sub("", text))
        assert left is None, f"{left[0]!r} in a block is not one of the page's placeholders"
        return pattern.sub(lambda m: values[m[1]], text)

    def certificate(self) -> tuple[Path, Path, Path]:
        """A self-signed certificate for 127.0.0.1: (cert, key, cert followed by key)."""
        if self._cert is None:
            cert, key = self.directory / "site.crt", self.directory / "site.key"
            subprocess.run(
                [
                    "openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )  # fmt: skip
            both = self.directory / "site.pem"
            both.write_bytes(cert.read_bytes() + key.read_bytes())
            self._cert = (cert, key, both)
        return self._cert

    def haproxy(self, block: str, wsgid_port: int = 0) -> HAProxy:
        """HAProxy running `block` (frontends and backends) after a minimal global section."""
        stats = self.directory / "haproxy.stats"
        config = self.directory / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"    stats socket {stats} mode 600 level admin\n"
            "    nbthread 1\n"
            "defaults\n"
            "    timeout connect 5s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "\n" + self.render(block, wsgid_port)
        )
        return self._started(HAProxy(config, self.directory, stats))

    def nginx(self, http: str = "", main: str = "", wsgid_port: int = 0) -> Nginx:
        """nginx with `http` inside its http block and `main` at the top level (`stream`)."""
        d = self.directory
        lines = []
        if "stream" in main:
            lines.append(f"load_module {NGINX_STREAM_MODULE};")
        if os.geteuid() == 0:
            # Its workers would run as nobody, who cannot enter the test's private directory.
            lines.append("user root;")
        lines += [
            "worker_processes 1;",
            f"pid {d / 'nginx.pid'};",
            f"lock_file {d / 'nginx.lock'};",
            f"error_log {d / 'error.log'} notice;",
            "events { worker_connections 64; }",
        ]
        if http:
            temp_paths = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            lines += ["http {", f"    access_log {d / 'access.log'};"]
            lines += [f"    {name}_temp_path {d / name};" for name in temp_paths]
            lines += [self.render(http, wsgid_port), "}"]
        if main:
            lines.append(self.render(main, wsgid_port))
        config = d / "nginx.conf"
        config.write_text("\n".join(lines) + "\n")
        return self._started(Nginx(config, d, d / "nginx.pid"))

    def _started(self, proxy: P) -> P:
        self.running.append(proxy)  # first, so that close() stops one that failed to start
        proxy.wait_ready()
        return proxy

    def close(self) -> list[str]:
        """Stop every proxy and remove the directory; return the problems found."""
        problems: list[str] = []
        for proxy in self.running:
            problems += proxy.stop()
        # The UNIX socket's directory stays: wsgid, stopped after the proxies, checks that it
        # removed its socket, and the work directory goes with the test.
        shutil.rmtree(self.directory, ignore_errors=True)
        return problems


@dataclass
class CurlReply:
    status: int
    local_port: int  # the client's port: what REMOTE_PORT should say behind a proxy
    body: bytes

    def seen(self) -> Seen:
        """What the echo app saw (its JSON)."""
        data = json.loads(self.body)
        assert isinstance(data, dict), self.body
        return data


def curl(url: str, *args: str, interface: str = CLIENT) -> CurlReply:
    """One GET with the real curl from `interface` (certificates not verified)."""
    done = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "--interface", interface,
         "-w", "\n%{local_port} %{http_code}", *args, url],
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, f"curl {url} failed: {done.stderr.decode()}"
    body, _, tail = done.stdout.rpartition(b"\n")
    port, status = tail.split()
    return CurlReply(int(status), int(port), body)


def serve(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, block: str, kind: str, *flags: str
) -> WsgidServer:
    """wsgid serving the echo app with the page's TOML `block`, one `kind` worker, `flags`.

    Returns once the worker has loaded the app (`master.ready`), without sending a request:
    on a PROXY listener a probe would itself be a rejected connection, and on a UNIX socket
    there is no port to probe. The listeners are bound before the worker is forked.
    """
    config = proxies.root / "wsgid.toml"

    def command(port: int) -> list[str]:
        config.write_text(proxies.render(snippet(block), wsgid_port=port))
        return [
            sys.executable, "-m", "wsgid", ECHO_APP, "--config", str(config),
            *kind_args(kind), "--workers", "1", *flags,
        ]  # fmt: skip

    server = wsgid(ECHO_APP, command=command, start=False)
    server.wait_workers(1)  # fails at once if the master exits (a configuration it refuses)
    server.wait_log("master.ready", timeout=30)
    return server
