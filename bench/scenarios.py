"""What the benchmark measures: the servers under test and the load patterns (scenarios)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.layout import HOST, POST_LUA, REPO, TLS_CERT, TLS_KEY, VENV, VENV_PY, WORK

HELLO_BODY = b"Hello, World!"
BIG_BODY = bytes(range(256)) * 4096  # the same 1 MiB as bench.apps.BIG_BODY
POST_BODY = b"0123456789abcdef" * 1024  # the same 16 KiB as post16k.lua sends
CLOSE_HEADERS = (("Connection", "close"),)  # a connection per request

# Chrome-like navigation headers (wrk adds Host), with the whole Sec-Fetch set.
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
        "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    ("Accept-Language", "en-US,en;q=0.9,fr;q=0.8"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    (
        "Cookie",
        "sessionid=3f9a1c2e7b8d4f6a9e0b1c2d3e4f5a6b; csrftoken=Yk7QpLr2Vx9ZbN4mC8dF1gH6jK3sT0wE; "
        "_ga=GA1.1.1234567890.1700000000; theme=dark",
    ),
    ("Referer", "https://www.example.com/articles/2024/benchmarks?page=2"),
    ("Cache-Control", "max-age=0"),
    ("Connection", "keep-alive"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
)


@dataclasses.dataclass(frozen=True)
class Server:
    """One server and worker kind under test."""

    name: str  # CLI name, e.g. "wsgid-sync"
    label: str  # table label, e.g. "wsgid sync"
    family: str  # "wsgid", "gunicorn", "granian" or "bjoern"
    kind: str  # "sync", "gthread", "gevent", "eventlet", "tornado", "granian" or "bjoern"
    # The PROXY protocol version its listener requires ("" for none): it serves only the
    # scenarios behind HAProxy, which sends it.
    proxy: str = ""
    # The access-log format it writes to a file in bench/.work ("" for no access log): it
    # serves only the hello scenario, next to its plain twin, to show what the log costs.
    access_log: str = ""
    # With what operators turn on: the side listener of health probes and /metrics
    # (`metrics_bind`), statsd, `max_worker_memory`: the master's work, which the serving path
    # must not feel. Also hello only, beside its plain twin.
    operated: bool = False
    # Environment variables it runs with, besides the bench's own: a library's knob the
    # operator sets (gevent's event-loop backend). Shown in the report's command lines.
    env: tuple[tuple[str, str], ...] = ()

    @property
    def variant(self) -> bool:
        """A plain server with one feature on, measured against its plain twin."""
        return bool(self.proxy or self.access_log or self.operated)

    def command(
        self,
        app: str,
        port: int,
        threads: int,
        workdir: Path = WORK,
        tls: bool = False,
        idle: int = 0,
    ) -> list[str]:
        """The command line serving ``bench.apps:<app>`` on 127.0.0.1:<port> (unpinned); an
        access log goes to a file in ``workdir``. With ``tls``, it serves HTTPS with the
        certificate and key made in ``workdir`` (bench.prerequisites.make_certificate). With
        ``idle``, it holds that many idle keep-alive connections besides the load's: room for
        them, and a keep-alive timeout longer than a run (the default 2 s would close them)."""
        target = f"bench.apps:{app}"
        bind = f"{HOST}:{port}"
        py = str(VENV_PY)
        cert, key = str(workdir / TLS_CERT), str(workdir / TLS_KEY)
        # (tornado: the pool of a WSGI app, as gthread's)
        threads_args = ["--threads", str(threads)] if self.kind in ("gthread", "tornado") else []
        tls_args = ["--certfile", cert, "--keyfile", key] if tls else []
        # wsgid takes gunicorn's flags: the same worker count, kind, threads, bind and TLS files.
        idle_args = (
            ["--worker-connections", str(idle + 1000), "--keep-alive", "120"] if idle else []
        )
        common = ["-w", "1", "-k", self.kind, *threads_args, "-b", bind, *tls_args, *idle_args]
        if self.family == "wsgid":
            proxy = ["--proxy-protocol", self.proxy] if self.proxy else []
            logfile = workdir / f"access-{self.name}-{port}.log"
            log = (
                ["--access-logfile", str(logfile), "--access-logformat", self.access_log]
                if self.access_log
                else []
            )
            # statsd to the discard port: the master builds and sends every interval's
            # datagrams as it would to a real statsd.
            ops = (
                ["--metrics-bind", f"{HOST}:0", "--max-worker-memory", "4096",
                 "--statsd-host", f"{HOST}:9"]
                if self.operated
                else []
            )  # fmt: skip
            return [py, "-m", "wsgid", target, *common, *proxy, *log, *ops]
        if self.family == "gunicorn":
            return [py, "-m", "gunicorn", *common, target]
        if self.family == "bjoern":
            return [py, "-m", "bench.bjoern_serve", app, bind]
        # granian's WSGI blocking-thread pool grows on demand (default max: backlog // 2).
        return [
            str(VENV / "bin" / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            "1",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "--host",
            HOST,
            "--port",
            str(port),
            *(["--ssl-certificate", cert, "--ssl-keyfile", key] if tls else []),
            target,
        ]


SERVERS: tuple[Server, ...] = (
    Server("wsgid-sync", "wsgid sync", "wsgid", "sync"),
    Server("wsgid-sync-proxy-v2", "wsgid sync + PROXY v2", "wsgid", "sync", proxy="v2"),
    Server(
        "wsgid-sync-log-json", "wsgid sync + JSON access log", "wsgid", "sync", access_log="json"
    ),
    Server(
        "wsgid-sync-log-logfmt",
        "wsgid sync + logfmt access log",
        "wsgid",
        "sync",
        access_log="logfmt",
    ),
    Server(
        "wsgid-sync-log-combined",
        "wsgid sync + combined access log",
        "wsgid",
        "sync",
        access_log="combined",
    ),
    Server(
        "wsgid-sync-operated",
        "wsgid sync + metrics listener, statsd and memory limit",
        "wsgid",
        "sync",
        operated=True,
    ),
    Server("wsgid-gthread", "wsgid gthread", "wsgid", "gthread"),
    Server("wsgid-gthread-proxy-v2", "wsgid gthread + PROXY v2", "wsgid", "gthread", proxy="v2"),
    Server("wsgid-gevent", "wsgid gevent", "wsgid", "gevent"),
    # gevent's libev on io_uring where the kernel allows it (epoll where not): its timers
    # fire within microseconds of their deadline, where epoll's wait rounds to milliseconds
    # (docs/worker-kinds.md, "Measured"). Opt-in, as gevent leaves it: the sleep scenario's.
    Server(
        "wsgid-gevent-iouring",
        "wsgid gevent, GEVENT_BACKEND=linux_iouring,epoll",
        "wsgid",
        "gevent",
        env=(("GEVENT_BACKEND", "linux_iouring,epoll"),),
    ),
    # gunicorn 26 removed its eventlet worker: wsgid's is compared with wsgid's gevent.
    Server("wsgid-eventlet", "wsgid eventlet", "wsgid", "eventlet"),
    # The bench's WSGI apps on -k tornado (a pool, as gthread; the loop waits in tornado's
    # IOLoop); its target is against gunicorn's gthread, gunicorn's tornado worker not being
    # wsgid's HTTP layer.
    Server("wsgid-tornado", "wsgid tornado", "wsgid", "tornado"),
    Server("gunicorn-sync", "gunicorn sync", "gunicorn", "sync"),
    Server("gunicorn-gthread", "gunicorn gthread", "gunicorn", "gthread"),
    Server("gunicorn-gevent", "gunicorn gevent", "gunicorn", "gevent"),
    Server("granian", "granian", "granian", "granian"),
    # What a request costs with no Python in the server: the distance left to close.
    Server("bjoern", "bjoern", "bjoern", "bjoern"),
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One load pattern: an app, a client shape and the server kinds it applies to."""

    name: str
    title: str
    app: str
    conns: int
    threads: int = 4  # --threads for gthread kinds
    headers: tuple[tuple[str, str], ...] = ()
    lua: Path | None = None
    method: str = "GET"
    body: bytes = b""
    expect: bytes = HELLO_BODY
    kinds: tuple[str, ...] = ("sync", "gthread", "granian", "bjoern")
    families: tuple[str, ...] = ("wsgid", "gunicorn", "granian", "bjoern")
    slowloris: int = 0  # trickling connections held open during the run
    idle: int = 0  # idle keep-alive connections held open during the run (bench/trickle.py)
    haproxy: bool = False  # wrk connects to an HAProxy (bench.haproxy) in front of each server
    tls: bool = False  # wrk talks HTTPS to each server, which serves the run's certificate

    def wrk_command(self, port: int, duration: int) -> list[str]:
        """The wrk command line (unpinned) for this scenario against 127.0.0.1:<port>."""
        cmd = ["wrk", "-t1", f"-c{self.conns}", f"-d{duration}s", "--latency"]
        for k, v in self.headers:
            cmd += ["-H", f"{k}: {v}"]
        if self.lua is not None:
            cmd += ["-s", str(self.lua.relative_to(REPO))]
        return [*cmd, f"{'https' if self.tls else 'http'}://{HOST}:{port}/"]

    @property
    def group(self) -> tuple[str, int, bool, bool, int]:
        """Scenarios of one group share running servers (same app, thread count, front, TLS
        and room for idle connections)."""
        return (self.app, self.threads, self.haproxy, self.tls, self.idle)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "hello",
        "hello keep-alive, 50 conns",
        "hello",
        50,
        kinds=("sync", "gthread", "gevent", "eventlet", "tornado", "granian", "bjoern"),
    ),
    Scenario(
        "headers", "hello + 13 browser headers, 50 conns", "hello", 50, headers=BROWSER_HEADERS
    ),
    Scenario(
        "close",
        "hello, Connection: close, 50 conns",
        "hello",
        50,
        headers=CLOSE_HEADERS,
    ),
    Scenario(
        "post",
        "POST echo 16 KiB, 50 conns",
        "echo",
        50,
        lua=POST_LUA,
        method="POST",
        body=POST_BODY,
        expect=POST_BODY,
    ),
    Scenario("big", "1 MiB response, 8 conns", "big", 8, expect=BIG_BODY),
    Scenario(
        "sleep",
        "app sleeps 10 ms, 50 conns, 50 threads (gevent, eventlet: a greenlet each)",
        "sleep",
        50,
        threads=50,
        kinds=("gthread", "gevent", "eventlet", "granian"),
    ),
    Scenario("slowloris", "hello keep-alive, 50 conns + 500 trickling", "hello", 50, slowloris=500),
    # What thousands of idle keep-alive clients (a WebSocket or long-poll crowd between
    # messages) cost the connections that are busy; the cooperative kinds' case.
    Scenario(
        "idle",
        "hello keep-alive, 50 conns + 5,000 idle keep-alive",
        "hello",
        50,
        idle=5000,
        kinds=("gevent", "eventlet"),
        families=("wsgid", "gunicorn"),
    ),
    # The cost of the PROXY protocol: wsgid with and without it, both behind the same HAProxy.
    Scenario(
        "proxy",
        "hello keep-alive through HAProxy (tcp mode), 50 conns",
        "hello",
        50,
        kinds=("sync", "gthread"),
        families=("wsgid",),
        haproxy=True,
    ),
)


def over_tls(base: str, name: str, title: str, kinds: tuple[str, ...]) -> Scenario:
    """The scenario named ``base``, over TLS, for the servers of ``kinds``."""
    sc = next(s for s in SCENARIOS if s.name == base)
    return dataclasses.replace(sc, name=name, title=title, kinds=kinds, tls=True)


# Over TLS: every server with its own TLS settings on the same certificate (bjoern has none).
# With Connection: close, wrk resumes the session of its last connection where the server lets it
# (the report says which do).
SCENARIOS += (
    over_tls("hello", "tls-hello", "hello keep-alive over TLS, 50 conns", ("sync", "granian")),
    over_tls(
        "close",
        "tls-hello-close",
        "hello over TLS, Connection: close (a handshake per request), 50 conns",
        ("sync", "granian"),
    ),
    over_tls("post", "tls-post16k", "POST echo 16 KiB over TLS, 50 conns", ("sync", "granian")),
    over_tls(
        "hello",
        "tls-gthread-hello",
        "hello keep-alive over TLS, 50 conns, gthread",
        ("gthread", "granian"),
    ),
)
SMOKE_SCENARIOS = ("hello", "post", "slowloris", "proxy", "tls-hello")


def applicable(sc: Scenario, server: Server) -> bool:
    """Whether ``sc`` is run against ``server`` (by its worker kind, family and listener)."""
    if server.proxy and not sc.haproxy:
        return False  # its listener wants a PROXY header, which only HAProxy sends
    if (server.access_log or server.operated) and sc.name != "hello":
        return False  # the cost of the feature is read off one scenario
    return server.kind in sc.kinds and server.family in sc.families


def plain_twin(server: Server) -> Server | None:
    """The server without the PROXY protocol or the access log of a server that has one (None
    for the plain ones)."""
    if not server.variant:
        return None
    return next(
        s for s in SERVERS if (s.family, s.kind) == (server.family, server.kind) and not s.variant
    )
