"""The master process: binds, forks and supervises the workers.

Owns: the process model. The master binds (or inherits) every listener
before forking, keeps `workers` workers running, replaces the ones that die,
and turns signals into actions. The workers as processes (forking, boot
reports, exits, heartbeat timeouts) are its worker table's (worker_table.py);
what an upgrade passes to the new master is handoff.py's. It knows nothing
of HTTP: the side listeners (`metrics_bind`, `control_socket`) are
side_listener.py's, which its loop drives; the master gives them their pages
(/livez, /readyz from `_not_ready`, /metrics from the totals, /status).

Operating it: the loop sends statsd's interval (statsd.py), keeps systemd's
STATUS showing the busy and idle workers, and makes the app's prometheus_client
directory ready before the app is imported (app_metrics.py). What it reports it
reads from the scoreboard through the totals (stats.py), never from a worker.

Draining (`shutdown_delay`): a graceful stop first keeps serving that long with
/readyz at 503 (`drain_until`), so that load balancers stop sending before the
listeners close.

Signals are only recorded by their handlers (a queue plus the wake-up fd);
the main loop acts on them, so no real work ever runs inside a handler.
`Master._ACTIONS` is the table of what each signal does (docs/signals.md).

Generations: every HUP starts a generation. Its workers are spawned next to
the old ones; only when all of them have booted are the old ones stopped, so
a reload never leaves the server without workers, and a reload whose
configuration or application is broken is abandoned with the old generation
still serving. A HUP during the first boot makes the master ready (`ready`)
once its generation has booted, or, if it failed, once the first one has.

Reload on a code change (`reload`): the watcher (reloader.py) runs here, in the loop, and a
change it reports takes the HUP path, so a new generation that cannot import the changed code
is abandoned like any failed reload and the next change tries again.

Boot failures: a worker that exits before it has booted failed to boot,
however it ended (the boot-failure or app-load-failure code, any other code,
0 included, or a signal). If the first generation has not booted yet, the
master stops with ExitCode.APP_LOAD_FAILED or ExitCode.BOOT_FAILED instead of forking
again; during a reload the reload fails; later, the replacement waits for a
backoff. A fork that fails (no pids, no memory) is retried with the same
backoff: the master never dies of it.

The workers die with the master: each has the kernel send it TERM when the
master exits, and checks its parent once a second (workers/base.py).

`wsgid check` fails as a start would: `check_start` takes the master's start-up steps in
its order, by the same functions (`resolve_start`: the hooks, the worker class, the workers'
user; the logs', TLS's, the multiprocess directory's and the control socket's own checks),
without binding, opening or creating anything.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from wsgid import build, early_signals, handoff, loader, privileges, processes, spew
from wsgid import listeners as listeners_mod
from wsgid import logs as logs_mod
from wsgid.exitcodes import ExitCode
from wsgid.hooks import HookError, Hooks
from wsgid.logs import escape, pipelines
from wsgid.pidfile import Pidfile, PidfileError
from wsgid.runtime import MAX_WORKERS, ConfigError, LoadedSettings, RuntimeSettings
from wsgid.scoreboard import STOPPING
from wsgid.stats import worker_state
from wsgid.systemd import Notifier, inherited_sockets
from wsgid.worker_table import BootFailure, WorkerProcess, WorkerTable
from wsgid.workers import KINDS, UnknownWorkerClass, resolve
from wsgid.workers.base import Worker, WorkerContext

if TYPE_CHECKING:
    from ssl import SSLContext

    from wsgid.app_metrics import AppMetrics
    from wsgid.daemonize import Readiness
    from wsgid.reloader import Reloader
    from wsgid.side_listener import Page, SideListener
    from wsgid.stats import Snapshot
    from wsgid.statsd import Statsd


TICK = 1.0
TLS_CHECK_INTERVAL = 2.0  # seconds between two looks at the TLS files (tls_reload_on_change)
SIDE_BACKLOG = 64  # pending probe connections the kernel queues on the side listener
METRICS_ATTEMPTS = 3  # collections of /metrics tried before it answers 503
MEMORY_CHECK_INTERVAL = 1.0  # seconds between two measures of the workers (max_worker_memory)
FAST_STOP_GRACE = 2.0  # seconds workers get to exit after a fast-stop signal
# Requests shown per worker while they run (a gthread worker's threads, a gevent worker's
# requests, beyond it are counted, not shown). Fixed at start: the scoreboard is made before
# the first fork.
MAX_RECORDS = 64

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)


class _StopRequested(Exception):
    """A stop signal (its name) came while the master waited for a busy address to bind."""


class Master:
    """Supervises generations of workers over a set of listeners."""

    def __init__(
        self,
        loaded: LoadedSettings,
        reload: Callable[[], LoadedSettings] | None = None,
        readiness: Readiness | None = None,
        app: Any = None,
    ) -> None:
        self.loaded = loaded
        self.readiness = readiness  # --daemon: the launching command waits on it
        self.settings = loaded.settings
        self.reload_settings = reload
        self.logs = logs_mod.setup(self.settings, loaded.sources)
        self.log = self.logs.error.bind(pid=os.getpid())
        if readiness is not None:
            self.log = readiness.tee(self.log)  # start-up errors also reach the launcher
        self.pid = os.getpid()
        self.cwd = loader.working_directory()
        self.app_label = (
            self.settings.proc_name
            or self.settings.default_proc_name
            or self.settings.app
            or self.settings.paste
            or "wsgid"
        )
        self.listeners: list[listeners_mod.Listener] = []
        self.signals: deque[int] = deque()
        self.generation = 1
        self.target = self.settings.workers
        self.ready = False  # the first boot is over: a generation has booted
        # (old generation, old settings) while a reload runs
        self.reload_from: tuple[int, RuntimeSettings, SSLContext | None] | None = None
        # A HUP came while a reload ran: one more follows it (`_reload`, `_after_reload`).
        self.reload_queued = False
        # The TLS context new workers inherit (tls.py); None: no listener serves HTTPS.
        self.tls: SSLContext | None = None
        # tls_reload_on_change: the files as the context was built from them (None: not
        # watched), a change seen once and waiting to settle, and the next look.
        self.tls_files: tuple[tuple[str, int, int, int], ...] | None = None
        self.tls_changed: tuple[tuple[str, int, int, int], ...] | None = None
        self.tls_next_check = 0.0
        self.stopping = False
        self.stop_deadline = 0.0
        self.next_memory_check = 0.0  # monotonic time of the next max_worker_memory check
        self.next_status = 0.0  # monotonic time of the next STATUS update (under systemd)
        self.status_text = ""  # the last STATUS sent while serving
        self.statsd: Statsd | None = None  # statsd_host: the metrics sender
        self.side: SideListener | None = None  # metrics_bind: health probes and /metrics
        self.control: SideListener | None = None  # control_socket: `wsgid status`
        self.app_metrics: AppMetrics | None = None  # the app's PROMETHEUS_MULTIPROC_DIR
        self.started_at = time.time()
        self.drain_until = 0.0  # shutdown_delay: serving on, /readyz 503, until then
        self.drain_signal = ""  # the stop signal the drain delays
        self.exit_code = int(ExitCode.OK)
        # The app the workers serve, if built here: preloaded, or built by the caller (pserve).
        self.app: Any = app
        self.pidfile: Pidfile | None = None
        self.handoff: handoff.Handoff | None = None  # what the old master passed (USR2)
        self.upgrade_pid = 0  # the new master we exec'd on USR2, while it runs
        self.old_master = 0  # the master that exec'd us on USR2, while it runs
        self.notifier = Notifier(os.environ)
        self.reloader: Reloader | None = None  # `reload`: the code watcher
        self.reloader_engine = ""  # the reload_engine it was made for
        self.hooks: Hooks
        self.table = WorkerTable(
            self.log,
            self._pre_fork,
            self._worker_main,
            records=min(self.settings.requests_at_once, MAX_RECORDS),
        )
        pipelines.LEVEL_COUNT.count = self.table.scoreboard.logged

    @property
    def workers(self) -> dict[int, WorkerProcess]:
        """pid -> record of every worker not reaped yet (hooks read `server.workers`)."""
        return self.table.workers

    # gunicorn's names, for hooks written for its arbiter (`server.cfg.bind`): the settings
    # have gunicorn's attribute names.
    @property
    def cfg(self) -> RuntimeSettings:
        return self.settings

    @property
    def num_workers(self) -> int:
        """The number of workers wanted now (TTIN, TTOU and reloads change it)."""
        return self.target

    # start-up

    def run(self) -> int:
        _set_title(f"wsgid: master [{self.app_label}]")
        try:
            self.handoff = handoff.take(os.environ)
        except handoff.HandoffError as exc:
            return self._fail_start(str(exc), ExitCode.LISTEN_FAILED)
        self.old_master = self.handoff.old_master if self.handoff is not None else 0
        try:
            self.hooks, self.worker_class = resolve_start(
                self.settings, self.loaded.sources, self.log
            )
            self.tls = self._tls_context(self.settings, self.loaded.sources, self.hooks)
        except CONFIG_ERRORS as exc:
            return self._fail_start(str(exc), ExitCode.CONFIG)
        # As gunicorn's arbiter, which sets its worker count (None before) as it is made.
        self.hooks.call("nworkers_changed", self, self.target, None)
        self.hooks.call("on_starting", self)
        # Before the pidfile says who we are (logrotate's USR1, a deploy's HUP go by it): a
        # signal that comes while the listeners are bound or a preloaded app is imported is
        # queued for the loop, never the default action that would end the master.
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._init_signals()
        if self.settings.pidfile:
            # Before binding: a second instance is told so, not "address in use".
            path = self.settings.pidfile + (".2" if self.old_master else "")
            pidfile = Pidfile(path)
            try:
                pidfile.create(self.pid)
            except PidfileError as exc:
                return self._fail_start(str(exc), ExitCode.PIDFILE)
            self.pidfile = pidfile
        try:
            try:
                # Before the sockets are taken: that takes their variables out of the
                # environment, by which _binds knows that sockets were passed.
                binds = self._binds()
                inherited = self._inherited()
                # An upgrade passes the side listener apart; systemd passes it among the
                # others, so it is taken from them first, never to be served as the app's.
                passed_side = self.handoff.adopt_side() if self.handoff is not None else []
                self.side = self._side_for(
                    self.settings.metrics_bind, passed_side if passed_side else inherited
                )
                for unused in passed_side:  # metrics_bind off, or moved
                    unused.sock.close()
                self.listeners = listeners_mod.bind_all(
                    binds,
                    self.settings.backlog,
                    self._on_bind_retry,
                    inherited,
                    reuse_port=self.settings.reuse_port,
                    unix_files=self._unix_files(self.settings),
                )
            except listeners_mod.ListenerError as exc:
                return self._fail_start(str(exc), ExitCode.LISTEN_FAILED)
            except _StopRequested as exc:
                self.log.info("master.stopped", signal=str(exc), exit_code=int(ExitCode.OK))
                return ExitCode.OK
            try:
                self.app_metrics = self._prepare_app_metrics()
                self.control = self._control_for(self.settings)
            except ConfigError as exc:
                return self._fail_start(str(exc), ExitCode.CONFIG)
            except listeners_mod.ListenerError as exc:
                return self._fail_start(str(exc), ExitCode.LISTEN_FAILED)
            if self.settings.preload_app and self.app is None:
                try:
                    self.app = loader.load_app(self.settings)
                except loader.AppLoadError as exc:
                    return self._fail_start(str(exc), ExitCode.APP_LOAD_FAILED)
            self._watch_code()
            if self.old_master:
                self.notifier.main_pid(self.pid)
            self.log.info(
                "master.started",
                version=_version(),
                build=build(),
                listening=",".join(self._urls()),
                workers=self.target,
                worker_class=self.worker_class.kind,
                **({"health": str(self.side)} if self.side is not None else {}),
                **({"control": str(self.control)} if self.control is not None else {}),
            )
            kind = KINDS.get(self.settings.worker_kind)
            if kind is not None and kind.deprecated:
                self.log.warning(
                    "worker_class.deprecated",
                    worker_class=self.settings.worker_kind,
                    reason=kind.deprecated,
                )
            if self.settings.spew:
                spew.announce(self.log, self.settings.loglevel)
            self.notifier.status(f"booting {self.target} workers")
            self._configure_statsd()
            self._manage_workers()
            return self._loop()
        finally:
            # A unix socket file another master still serves on (an upgrade that failed or
            # was rolled back: the old master goes on) is left where it is.
            shared = self._shares_sockets()
            listeners_mod.close_all(self.listeners, unlink=not shared)
            if self.side is not None:
                self.side.close(unlink=not shared)
            if self.control is not None:
                self.control.close(unlink=not self.upgrade_pid)
            if self.app_metrics is not None:
                self.app_metrics.close(handed_over=bool(self.upgrade_pid))
            if self.statsd is not None:
                self.statsd.close()
            if self.reloader is not None:
                self.reloader.close()
            if self.pidfile is not None:
                self.pidfile.remove()
            self.hooks.call("on_exit", self)

    def _shares_sockets(self) -> bool:
        """Whether another master serves on this one's listeners: the one it started (USR2),
        or the one that started it and still runs (an upgrade not finished, failed, or
        rolled back by stopping this one)."""
        return bool(self.upgrade_pid or (self.old_master and processes.running(self.old_master)))

    def _binds(self) -> tuple[str, ...]:
        """The configured binds; none (serve what was passed) under bare socket activation.

        A master exec'd on USR2 by such a master serves what it was passed too: binding the
        default address instead would leave systemd's socket without anyone accepting.
        """
        passed = "LISTEN_FDS" in os.environ or self.handoff is not None
        if self.loaded.sources.get("bind") == "default" and passed:
            return ()
        return self.settings.bind

    def _side_for(
        self, bind: str | None, pool: list[listeners_mod.Inherited]
    ) -> SideListener | None:
        """The side listener of `bind` (metrics_bind), its socket taken from `pool` if it was
        passed in; None when `bind` is. ListenerError if it cannot be opened."""
        if bind is None:
            return None
        from wsgid.side_listener import SideListener

        listener = listeners_mod.bind_one(bind, SIDE_BACKLOG, pool, self._on_bind_retry)
        return SideListener(
            listener,
            {b"/livez": _livez, b"/readyz": self._readyz, b"/metrics": self._metrics},
        )

    def _readyz(self) -> Page:
        from wsgid.side_listener import TEXT

        reason = self._not_ready()
        if reason is None:
            return "200 OK", TEXT, b"ready\n"
        return "503 Service Unavailable", TEXT, f"not ready: {reason}\n".encode()

    def _metrics(self) -> Page:
        from wsgid import prometheus
        from wsgid.side_listener import TEXT

        app_dir = (
            self.app_metrics.path
            if self.app_metrics is not None and self.app_metrics.managed
            else None
        )

        def collect() -> bytes:
            return prometheus.exposition(
                self._snapshot(), listeners_mod.queued(self.listeners), app_dir
            )

        # prometheus_client reading a worker's file as it is made or replaced (a recycled
        # worker's slot) can fail: try again; a scrape must never take the master down.
        for _ in range(METRICS_ATTEMPTS - 1):
            with contextlib.suppress(Exception):
                return "200 OK", prometheus.CONTENT_TYPE, collect()
        try:
            body = collect()
        except Exception:
            self.log.exception("metrics.failed", attempts=METRICS_ATTEMPTS)
            return "503 Service Unavailable", TEXT, b"metrics unavailable, try again\n"
        return "200 OK", prometheus.CONTENT_TYPE, body

    def _prepare_app_metrics(self) -> AppMetrics | None:
        """prometheus_multiproc_dir: the app's multiprocess directory, ready before the app
        is imported (None: not managed). ConfigError if it cannot be made ready."""
        setting = self.settings.prometheus_multiproc_dir
        handed = self.handoff.metrics_dir if self.handoff is not None else None
        managed = _manages_app_metrics(self.settings)
        if not managed and handed is None:
            return None  # nothing of it loaded: "auto" manages one for /metrics only
        from wsgid import app_metrics

        if not managed:
            # The old master's directory, which this master does not serve: the old workers
            # may still write to it; it goes when this master exits, and no new worker gets it.
            os.environ.pop(app_metrics.VARIABLE, None)
            return app_metrics.AppMetrics(handed or "", owned=True, managed=False)
        settings = self.settings
        credentials = privileges.resolve(settings.user, settings.group, self.loaded.sources)
        owner = (credentials.uid, credentials.gid) if credentials is not None else None
        try:
            path, owned = app_metrics.choose(setting, os.environ, handed)
            return app_metrics.prepare(
                path, owned, owner, upgrade=self.handoff is not None, environ=os.environ
            )
        except app_metrics.AppMetricsError as exc:
            raise ConfigError(str(exc)) from exc

    def _control_for(self, settings: RuntimeSettings) -> SideListener | None:
        """The control socket the settings ask for (None: none). ConfigError if its directory
        cannot have it (`control.check_place`), ListenerError if it cannot be bound."""
        from wsgid import control

        path = control.socket_path(
            settings.control_socket, settings.control_socket_disable, os.environ
        )
        if path is None:
            return None
        from wsgid.side_listener import SideListener

        control.check_place(path)
        if self.handoff is not None:
            # Started by USR2: the old master's socket has the path; this one takes it over
            # (the old master leaves the file alone when it exits).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        listener = listeners_mod.bind_one(f"unix:{path}", SIDE_BACKLOG, [], self._on_bind_retry)
        os.chmod(path, settings.control_socket_mode)
        return SideListener(listener, {b"/status": self._status}, admit=self._admit_control)

    def _admit_control(self, sock: socket.socket) -> bool:
        from wsgid import control

        pid, uid = control.peer(sock)
        if control.allowed(uid):
            return True
        self.log.warning(
            "control.refused", peer_pid=pid, peer_uid=uid, reason="not root nor the server's user"
        )
        return False

    def _status(self) -> Page:
        """`wsgid status`: the status document (control.py)."""
        import json

        return "200 OK", "application/json", json.dumps(self._status_document()).encode()

    def _status_document(self) -> dict[str, Any]:
        now = time.monotonic()
        scoreboard = self.table.scoreboard
        totals = self._snapshot()
        workers = []
        for worker in sorted(self.workers.values(), key=lambda w: w.age):
            reading = scoreboard.read(worker.slot)
            memory = processes.memory(worker.pid, "rss") or 0
            scoreboard.set_memory(worker.slot, memory)  # the slot's "last measured"
            workers.append(
                {
                    "pid": worker.pid, "slot": worker.slot, "generation": worker.generation,
                    "state": worker_state(worker.booted, worker.retiring, reading.active),
                    "age": round(now - worker.spawned, 3), "requests": reading.answered,
                    "active": reading.active, "memory": memory,
                    "running": [
                        {
                            "method": r.method, "path": r.path, "request_id": r.request_id,
                            "age": round(now - r.started, 3),
                        }
                        for r in sorted(reading.running, key=lambda r: r.started)
                    ],
                }
            )  # fmt: skip
        if self.stopping:
            state = "stopping"
        elif self.drain_until:
            state = "draining"
        elif not self.ready:
            state = "booting"
        elif self.reload_from is not None:
            state = "reloading"
        else:
            state = "serving"
        return {
            "master": {
                "pid": self.pid, "app": self.app_label, "version": _version(), "state": state,
                "generation": self.generation, "workers_wanted": self.target,
                "started": self.started_at,
            },
            "listeners": self._urls(),
            "side": str(self.side) if self.side is not None else None,
            "totals": {"requests": totals.answered, "restarts": totals.restarts},
            "workers": workers,
        }  # fmt: skip

    def _not_ready(self) -> str | None:
        """Why /readyz answers 503 now (None: ready for traffic)."""
        if self.stopping:
            return "stopping"
        if self.drain_until:
            return "draining before a stop (shutdown_delay)"
        if not self.ready:
            return "the first workers are booting"
        # Once the first workers have booted, one worker serving is enough: readiness says
        # whether traffic sent here is served, not at what capacity (the workers gauge says
        # that). Workers replaced one by one (max_requests, memory, a crash) would otherwise
        # take a server whose app imports slowly out of rotation for most of a busy minute.
        booted = sum(1 for w in self.workers.values() if w.booted and not w.retiring)
        if booted == 0:
            return f"0 of {self.target} workers booted"
        return None

    def _inherited(self) -> list[listeners_mod.Inherited]:
        """Sockets from the previous master (USR2) or from systemd."""
        if self.handoff is not None:
            return self.handoff.adopt()
        return inherited_sockets(os.environ)

    def _fail_start(self, message: str, code: int) -> int:
        self.log.error("master.start_failed", error=message, exit_code=int(code))
        if self.settings.errorlog != "-":
            print(f"wsgid: {escape.printable(message)}", file=sys.stderr)
        return code

    def _on_bind_retry(self, address: str, exc: OSError) -> None:
        # A stop asked for while the address is busy ends the start now, not after the
        # retries and a boot of the workers.
        stop = next((s for s in self.signals if s in _STOP_SIGNALS), None)
        if stop is not None:
            raise _StopRequested(signal.Signals(stop).name)
        self.log.warning("listener.busy", address=address, error=exc.strerror, action="retrying")

    # the loop

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            timeout = min(TICK, self.notifier.watchdog_due_in(now))
            if self.table.next_spawn and self._current_count() < self.target:
                timeout = min(timeout, max(0.0, self.table.next_spawn - now))
            if not self.ready and not self.stopping:
                # A slow first boot is progress, not a hang: keep systemd's
                # start timeout ahead of it (workers that hang are killed by
                # `timeout` anyway).
                self.notifier.extend_timeout(max(self.settings.timeout, 30.0) + TICK)
            fds = [self.wake_r, self.table.boot_r]
            if self.reloader is not None:
                fds += self.reloader.fds()
                timeout = min(timeout, self.reloader.wait(now, self._may_reload()))
            wfds: list[int] = []
            sides = [s for s in (self.side, self.control) if s is not None]
            for side in sides:
                fds += side.readable()
                wfds += side.writable()
                due = side.next_deadline()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - now))
            if self.drain_until:
                timeout = min(timeout, max(0.0, self.drain_until - now))
            if self.statsd is not None:
                timeout = min(timeout, self.statsd.due_in(now))
            try:
                readable, writable = _wait(fds, wfds, timeout)
            except InterruptedError:
                readable, writable = [], []
            now = time.monotonic()
            self.notifier.watchdog(now)
            for side in sides:
                side.handle(readable, writable, now)
            if self.wake_r in readable:
                _drain(self.wake_r)
            if self.reloader is not None:
                # Before the boot reports: a worker reports its module files first, so they
                # are watched by the time its generation is declared booted (reload.done).
                self.reloader.handle(readable, now)
            if self.table.boot_r in readable:
                self._read_boots()
            while self.signals:
                self._handle_signal(self.signals.popleft())
            self._reap()
            if self.statsd is not None and now >= self.statsd.next_due:
                self._send_statsd(now)
            if self.drain_until and now >= self.drain_until:
                self.drain_until = 0.0
                self._stop(fast=False, reason=self.drain_signal)
            if self.stopping:
                if not self.workers:
                    break
                if time.monotonic() >= self.stop_deadline:
                    self.table.kill_all()
                    self.stop_deadline = time.monotonic() + FAST_STOP_GRACE
                continue
            self._report_status(now)
            self._check_old_master()
            self.table.check_timeouts(self.settings.timeout)
            self._check_memory(now)
            self._check_code(now)
            self._check_tls_files(now)
            self._manage_workers()
        if self.statsd is not None:
            self._send_statsd(time.monotonic())  # what the last workers did before they exited
        self.log.info("master.stopped", exit_code=self.exit_code)
        return self.exit_code

    # signals: a handler only queues its signal; the loop runs its action (_ACTIONS, below)

    def _init_signals(self) -> None:
        for sig in self._ACTIONS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        # As PID 1, a stop signal that came while the configuration was read: before ours.
        self.signals.extendleft(reversed(early_signals.release()))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _handle_signal(self, signum: int) -> None:
        sig = signal.Signals(signum)
        if self.stopping and sig not in _STOP_SIGNALS:
            return  # only another stop signal means something now: it makes the stop fast
        if self.drain_until and sig in (signal.SIGHUP, signal.SIGUSR2):
            self.log.info("master.signal_ignored", signal=sig.name, reason="draining to stop")
            return
        self._ACTIONS[sig](self, sig.name)

    def _graceful_stop(self, name: str) -> None:
        delay = self.settings.shutdown_delay
        if self.stopping or self.drain_until or not delay or self.upgrade_pid:
            # Again while draining: stop now. After an upgrade the new master serves on the
            # same sockets, so there is nothing for a load balancer to drain.
            self.drain_until = 0.0
            self._stop(fast=self.stopping, reason=name)
            return
        self.drain_until = time.monotonic() + delay
        self.drain_signal = name
        self.log.info("master.draining", signal=name, seconds=delay, workers=len(self.workers))
        self.notifier.stopping(f"draining for {delay:g} s before stopping (shutdown_delay)")

    def _fast_stop(self, name: str) -> None:
        self.drain_until = 0.0
        self._stop(fast=True, reason=name)

    def _one_more_worker(self, name: str) -> None:
        self._scale(+1, name)

    def _one_fewer_worker(self, name: str) -> None:
        self._scale(-1, name)

    def _stop_all_workers(self, name: str) -> None:
        self.log.info("master.winch", action="stopping all workers")
        self._set_target(0, name)

    def _reopen_logs(self, name: str) -> None:
        # The workers first: once the old file ends with this event, every worker has been
        # told, and what it answers from then on goes to the new files.
        self.table.signal_all(signal.SIGUSR1)
        self.log.info("master.reopen_logs")
        self.logs.reopen()

    def _child_exited(self, name: str) -> None:
        """Nothing to do: the loop reaps children on every turn, and this signal woke it."""

    def _scale(self, step: int, name: str) -> None:
        target, refused = scaled(self.target, step)
        if refused:
            self.log.info(
                "master.workers_unchanged", workers=self.target, signal=name, reason=refused
            )
        self._set_target(target, name)

    def _set_target(self, target: int, reason: str) -> None:
        old, self.target = self.target, target
        if old != target:
            self.log.info("master.workers_changed", workers=target, was=old, signal=reason)
            self.hooks.call("nworkers_changed", self, target, old)

    # stop

    def _stop(self, fast: bool, reason: str) -> None:
        if self.stopping and not fast:
            return
        grace = FAST_STOP_GRACE if fast else self.settings.graceful_timeout
        deadline = time.monotonic() + grace
        self.log.info(
            "master.stopping", signal=reason, graceful=not fast, workers=len(self.workers)
        )
        if self.drain_signal:  # STOPPING=1 went at the start of the drain
            self.notifier.status("stopping")
        else:
            self.notifier.stopping()
        self.stopping = True
        self.stop_deadline = min(self.stop_deadline, deadline) if self.stop_deadline else deadline
        # Stop accepting at once. Workers close their copies on TERM, but a
        # sync worker busy in the app would keep its copy (and the kernel
        # keep queueing connections) until the app returns: shutting the
        # listening socket down stops it for every process at once. Not when
        # another master shares it (an upgrade in progress), nor for
        # systemd's sockets, which outlive us.
        shared = self._shares_sockets()
        if not shared:
            for listener in self.listeners:
                if listener.created:
                    with contextlib.suppress(OSError):
                        listener.sock.shutdown(socket.SHUT_RDWR)
        listeners_mod.close_all(self.listeners, unlink=not shared)
        self.listeners = []
        # Read by the workers as they stop: no worker of this server will serve an idle
        # keep-alive client's next request, so they close those connections at once. Not
        # while another master serves these listeners (the old master of an upgrade, TERMed
        # or QUIT): the server goes on, and the workers stop as retired ones do, answering
        # a request already on its way over an idle connection (with `Connection: close`),
        # or a client of theirs would get an empty EOF for it.
        if not shared:
            scoreboard = self.table.scoreboard
            scoreboard.set_state(scoreboard.master_slot, STOPPING)
        self.table.signal_all(signal.SIGQUIT if fast else signal.SIGTERM)

    # reload (HUP)

    def _reload(self, name: str) -> None:
        if self.reload_settings is None:
            self.log.warning("reload.unavailable", reason="no configuration source to re-read")
            return
        if self.reload_from is not None:
            # Not dropped: the configuration may have changed since the running reload read
            # it (a deploy that edits and HUPs twice). One reload follows, however many came.
            if not self.reload_queued:
                self.reload_queued = True
                self.log.info("reload.queued", signal=name, reason="a reload is in progress")
            return
        self.notifier.reloading()
        # Into the working directory by its name again: a release symlink switched since
        # (`current -> releases/43`) now leads the configuration, the new workers' imports
        # and their relative paths to the new release.
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        try:
            loaded = self.reload_settings()
            new = loaded.settings
            loader.extend_import_path(new.chdir, new.pythonpath)
            hooks, worker_class = resolve_start(new, loaded.sources, self.log)
            tls_context = self._tls_context(new, loaded.sources, hooks)
            # Opened now, so that a log file that cannot be opened fails the
            # reload, not the master.
            changed = logs_mod.changed(self.settings, new)
            new_logs = logs_mod.setup(new, loaded.sources) if changed else None
        except Exception as exc:  # a ConfigError, HookError, LogSetupError: keep serving
            self.log.error("reload.failed", error=str(exc), action="keeping the running workers")
            self._announce_ready()
            return
        try:
            self._move_listeners(new)
        except listeners_mod.ListenerError as exc:
            self.log.error("reload.failed", error=str(exc), action="keeping the running workers")
            if new_logs is not None:
                new_logs.close()
            self._announce_ready()
            return
        self.reload_from = (self.generation, self.settings, self.tls)
        self.loaded, self.settings, self.hooks, self.worker_class = loaded, new, hooks, worker_class
        self.tls = tls_context
        # The configuration just read is the one on_reload belongs to (gunicorn calls the new
        # one too), and its raw_env what the new workers inherit.
        self.hooks.call("on_reload", self)
        apply_raw_env(new.raw_env)
        if new_logs is not None:
            old_logs, self.logs = self.logs, new_logs
            self.log = self.table.log = self.logs.error.bind(pid=self.pid)
            old_logs.close()  # the old workers keep their own descriptors
        self._watch_code()  # before the new workers fork: they report to the watcher it makes
        self._configure_statsd()
        self.generation += 1
        self._set_target(new.workers, "SIGHUP")
        self.log.info("reload.started", generation=self.generation, workers=self.target)

    def _urls(self, settings: RuntimeSettings | None = None) -> list[str]:
        """The listeners as the log and `wsgid status` show them: https on a TLS one."""
        settings = settings or self.settings
        shown = []
        for listener in self.listeners:
            text = str(listener)
            if settings.tls_of(listener.spec.text) and text.startswith("http://"):
                text = "https://" + text.removeprefix("http://")
            shown.append(text)
        return shown

    def _tls_context(
        self, settings: RuntimeSettings, sources: Mapping[str, str], hooks: Hooks
    ) -> SSLContext | None:
        """The TLS context of a generation (start, HUP), its certificate logged; None without
        TLS. ConfigError if the files or the ssl_context hook cannot give one."""
        if settings.certfile is None:
            return None
        from wsgid import tls

        files = tls.files_state(settings) if settings.tls_reload_on_change else None
        context = tls.build(settings, sources, hooks.function("ssl_context"))
        tls.log_certificate(self.log, settings)
        self.tls_files = files  # what the workers serve from now on (or after the reload)
        return context

    def _check_tls_files(self, now: float) -> None:
        """tls_reload_on_change: TLS files that changed, and then stayed alike for one more
        look, reload as HUP does (a certificate renewed in place)."""
        if self.tls_files is None or now < self.tls_next_check or not self._may_reload():
            return
        from wsgid import tls

        self.tls_next_check = now + TLS_CHECK_INTERVAL
        seen = tls.files_state(self.settings)
        if seen == self.tls_files:
            self.tls_changed = None
        elif seen != self.tls_changed:
            self.tls_changed = seen  # still being written, maybe: look again next time
        else:
            # Taken as the current state whatever the reload does: files that cannot be
            # loaded fail it once (reload.failed), and the next change tries again.
            self.tls_files, self.tls_changed = seen, None
            changed = [path for path, *_ in seen]
            self.log.info("tls.files_changed", files=" ".join(changed), action="reloading")
            self._reload("tls_reload_on_change")

    def _unix_files(self, settings: RuntimeSettings) -> listeners_mod.UnixFiles:
        """The unix socket files of `bind` are made under `umask` and belong to the workers'
        user and group, as gunicorn makes them (`resolve_start` has checked the names)."""
        credentials = privileges.resolve(settings.user, settings.group, self.loaded.sources)
        if credentials is None:
            return listeners_mod.UnixFiles(settings.umask)
        return listeners_mod.UnixFiles(settings.umask, credentials.uid, credentials.gid)

    def _move_listeners(self, new: RuntimeSettings) -> None:
        """Bind what a reload's settings add, the application's listeners and the side
        listener, then close what they drop. On ListenerError nothing has changed."""
        side_moves = new.metrics_bind != self.settings.metrics_bind
        side = self._side_for(new.metrics_bind, []) if side_moves else self.side
        if new.bind != self.settings.bind:
            try:
                self.listeners = listeners_mod.rebind(
                    self.listeners,
                    new.bind,
                    new.backlog,
                    self._on_bind_retry,
                    new.reuse_port,
                    self._unix_files(new),
                )
            except listeners_mod.ListenerError:
                if side_moves and side is not None:
                    side.close()
                raise
            self.log.info("listeners.changed", listening=",".join(self._urls(new)))
        if side_moves:
            if self.side is not None:
                self.side.close()
            self.side = side
            self.log.info("health.changed", health=str(side) if side is not None else "off")

    def _reload_done(self) -> None:
        """The new generation has booted: stop the old one gracefully."""
        assert self.reload_from is not None
        self.reload_from = None
        self.table.retire_other_generations(keep=self.generation)
        self.log.info("reload.done", generation=self.generation)
        self._announce_ready()
        self._after_reload()

    def _reload_failed(self, reason: str) -> None:
        """A worker of the new generation could not boot: go back to the old one."""
        assert self.reload_from is not None
        old_generation, old_settings, self.tls = self.reload_from
        self.reload_from = None
        self.table.retire_other_generations(keep=old_generation)
        self.generation, self.settings = old_generation, old_settings
        self.target = old_settings.workers
        self.hooks = Hooks(old_settings, self.log)
        apply_raw_env(old_settings.raw_env)
        self.worker_class = resolve(old_settings.worker_kind)
        self._watch_code()
        self._configure_statsd()
        self.log.error("reload.failed", error=reason, action="keeping the running workers")
        self._announce_ready()
        self._after_reload()

    def _after_reload(self) -> None:
        """Start the reload a HUP asked for while the last one ran (`reload_queued`)."""
        if self.reload_queued and not self.stopping:
            self.reload_queued = False
            self._reload("SIGHUP")
        # A HUP during the first boot: the old generation may have booted while the reload
        # ran, when its boot reports could not make the master ready.
        self._check_generation_booted()

    def _announce_ready(self) -> None:
        """READY=1 and the serving status. A reload that ends during the first boot (a HUP came
        then) leaves it to the first boot's end: READY=1 tells systemd the workers have booted."""
        if not self.ready:
            return
        self.status_text = self._serving_status()
        self.notifier.ready(self.status_text)

    def _serving_status(self) -> str:
        """What STATUS says while serving: the workers, and how many have a request in the app."""
        current = self.table.current(self.generation)
        active = self.table.scoreboard.active
        booted = [w for w in current if w.booted]
        busy = sum(1 for w in booted if active(w.slot) > 0)
        return f"serving with {len(current)} workers: {busy} busy, {len(booted) - busy} idle"

    def _report_status(self, now: float) -> None:
        """Under systemd, keep STATUS up to date with the busy and idle workers (once a TICK)."""
        if (
            not self.notifier.enabled
            or not self.ready
            or self.stopping
            or self.drain_until
            or self.reload_from is not None
            or now < self.next_status
        ):
            return
        self.next_status = now + TICK
        text = self._serving_status()
        if text != self.status_text:
            self.status_text = text
            self.notifier.status(text)

    # metrics

    def _snapshot(self) -> Snapshot:
        """The totals over every worker now, the reaped ones' included."""
        return self.table.totals.snapshot(self._live())

    def _live(self) -> list[tuple[int, bool, bool]]:
        """(slot, booted, retiring) of every live worker, as the totals read them."""
        return [(w.slot, w.booted, w.retiring) for w in self.workers.values()]

    def _configure_statsd(self) -> None:
        """Start, change or stop sending to statsd as the settings now say (start, HUP)."""
        settings, old = self.settings, self.statsd
        if settings.statsd_host is None:
            if old is not None:
                old.close()
                self.statsd = None
                self.log.info("statsd.stopped")
            return
        from wsgid import statsd

        if old is not None and old.key == statsd.settings_key(settings):
            old.log = self.log  # a reload may have replaced the log
            return
        if old is not None:
            old.close()
            baseline = old.previous  # what the old settings sent: counted once
        else:
            # Counted from now on: the durations so far are not sent either.
            baseline, _, _ = self.table.totals.interval(self._live())
        backlog = None
        if settings.enable_backlog_metric:
            backlog = lambda: listeners_mod.queued(self.listeners)  # noqa: E731 - one expression
        self.statsd = statsd.Statsd(settings, self.log, baseline, backlog)
        self.log.info(
            "statsd.sending", target=str(self.statsd.target), interval=settings.statsd_interval,
            naming=settings.statsd_naming,
        )  # fmt: skip

    def _send_statsd(self, now: float) -> None:
        """One interval of statsd metrics: what changed since the last, and the gauges."""
        statsd = self.statsd
        assert statsd is not None
        statsd.next_due = now + statsd.interval
        totals, durations, timed = self.table.totals.interval(self._live())
        statsd.send(statsd.lines(totals, durations, timed))

    # reload on a code change (`reload`)

    def _watch_code(self) -> None:
        """Start, reconfigure or stop the code watcher as the settings now say."""
        settings, watcher = self.settings, self.reloader
        if watcher is not None and (
            not settings.reload or settings.reload_engine != self.reloader_engine
        ):
            watcher.close()
            self.reloader = watcher = None
        if not settings.reload:
            return
        if watcher is not None:
            watcher.log = self.log  # a reload may have replaced the log
            watcher.set_globs(settings.reload_extra_files, self.cwd)
            return
        from wsgid import reloader  # only with `reload` on: a development setting

        engine, why = reloader.make_engine(settings.reload_engine)
        if why is not None:
            self.log.warning(
                "reload.engine_unavailable", wanted=settings.reload_engine, engine=engine.name,
                reason=why,
            )  # fmt: skip
        self.reloader = reloader.Reloader(engine, settings.reload_extra_files, self.cwd, self.log)
        self.reloader_engine = settings.reload_engine
        self.log.info(
            "reload.watching", engine=engine.name, extra_files=",".join(settings.reload_extra_files)
        )

    def _may_reload(self) -> bool:
        """A code change may start a reload now (else it waits for the one under way)."""
        return self.ready and not self.stopping and self.reload_from is None

    def _check_code(self, now: float) -> None:
        """A change the watcher saw that has settled reloads, as HUP does."""
        if self.reloader is None:
            return
        if not self._may_reload():
            return
        paths = self.reloader.ripe(now)
        if paths:
            more = f" (+{len(paths) - 5} more)" if len(paths) > 5 else ""
            self.log.info(
                "reload.code_changed", files=" ".join(paths[:5]) + more,
                engine=self.reloader.engine.name,
            )  # fmt: skip
            self._reload("code change")

    # upgrade (USR2)

    def _upgrade(self, name: str) -> None:
        if self.upgrade_pid or self.old_master:
            self.log.warning("upgrade.ignored", reason="an upgrade is already in progress")
            return
        self.hooks.call("pre_exec", self)
        try:
            pid = os.fork()
        except OSError as exc:  # no pids or memory left: keep serving; USR2 may be sent again
            self.log.error("upgrade.failed", error=f"cannot fork: {exc}")
            return
        if pid:
            self.upgrade_pid = pid
            self.notifier.upgrading(pid)  # under systemd, the new master speaks from now on
            self.log.info("upgrade.started", new_master=pid)
            if os.getpid() == 1:
                # The new master is our child, in our pid namespace: the upgrade's last step
                # (TERM to the old master) would end the whole container.
                self.log.warning(
                    "upgrade.pid1",
                    new_master=pid,
                    reason="wsgid is PID 1 of its pid namespace (a container): when this"
                    " master exits, the kernel ends every process in it, the new master"
                    " included; WINCH this master and keep it, or replace the container",
                )
            return
        try:
            signal.set_wakeup_fd(-1)
            side = self.side.listener if self.side is not None else None
            metrics = self.app_metrics
            owned_dir = metrics.path if metrics is not None and metrics.owned else None
            handoff.exec_new_master(self.listeners, self.pid, self.cwd, side, owned_dir)
        finally:
            os._exit(ExitCode.ERROR)

    def _check_old_master(self) -> None:
        """In a new master: once the old one has exited, take over its pidfile."""
        if not self.old_master or processes.running(self.old_master):
            return
        self.log.info("upgrade.old_master_exited", old_master=self.old_master)
        self.old_master = 0
        if self.pidfile is not None and self.settings.pidfile:
            try:
                self.pidfile.rename(self.settings.pidfile)
            except (OSError, PidfileError) as exc:
                self.log.error("pidfile.rename_failed", error=str(exc))

    # workers

    def _manage_workers(self) -> None:
        self.table.scale(self.generation, self.target)

    def _current_count(self) -> int:
        return len(self.table.current(self.generation))

    def _read_boots(self) -> None:
        limited = self.settings.max_worker_memory > 0
        self.table.read_boots(self.settings.max_worker_memory_metric if limited else None)
        self._check_generation_booted()

    def _check_memory(self, now: float) -> None:
        """max_worker_memory: once every MEMORY_CHECK_INTERVAL, retire the workers over it."""
        limit = self.settings.max_worker_memory
        if not limit or now < self.next_memory_check:
            return
        self.next_memory_check = now + MEMORY_CHECK_INTERVAL
        self.table.check_memory(self.generation, limit, self.settings.max_worker_memory_metric)

    def _check_generation_booted(self) -> None:
        current = self.table.current(self.generation)
        if len(current) < self.target or not all(w.booted for w in current):
            return
        if self.reload_from is not None:
            self._reload_done()
        if not self.ready:
            # Also after a reload: a HUP during the first boot makes its generation the first
            # to boot, and no other boot report would ever come to make the master ready.
            self.ready = True
            self.hooks.call("when_ready", self)
            self.log.info("master.ready", workers=len(current))
            self._announce_ready()
            if self.readiness is not None:
                self.readiness.ready()

    def _reap(self) -> None:
        for pid, status in processes.reaped():
            if pid == self.upgrade_pid:
                self.upgrade_pid = 0
                self.log.error("upgrade.failed", new_master=pid, status=processes.describe(status))
                continue
            worker = self.workers.get(pid)
            if worker is None:
                continue  # not ours: as PID 1 we adopt orphans; reap them quietly
            if not worker.booted:
                self._read_boots()  # it may have booted just before it exited
            expected = worker.retiring or self.stopping
            failure = self.table.remove(worker, status, expected, self.settings.timeout)
            if self.app_metrics is not None and self.app_metrics.managed:
                self.app_metrics.worker_gone(worker.slot)  # before its slot is given again
            if failure is not None:
                self._boot_failed(failure)
            self.hooks.call("child_exit", self, worker)

    def _boot_failed(self, failure: BootFailure) -> None:
        if self.reload_from is not None and failure.worker.generation == self.generation:
            self._reload_failed(failure.reason)
        elif not self.ready:
            # The first generation cannot boot: it would not boot next time either.
            self.exit_code = failure.exit_code
            self._stop(fast=True, reason="worker boot failure")
        else:
            self.table.backoff()

    def _pre_fork(self, record: WorkerProcess) -> None:
        self.hooks.call("pre_fork", self, record)

    def _worker_main(self, record: WorkerProcess) -> int:
        """The first code a forked worker runs: drop master state, become a worker."""
        self.worker_class.prepare_process()  # first: a cooperative kind patches here
        signal.set_wakeup_fd(-1)
        for sig in self._ACTIONS:
            signal.signal(sig, signal.SIG_DFL)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        if self.reloader is not None:
            self.reloader.close_in_child()  # one watcher, the master's: never in a worker
        if self.side is not None:
            self.side.close_in_child()  # probes are the master's to answer
        if self.control is not None:
            self.control.close_in_child()
        if self.app_metrics is not None and self.app_metrics.managed:
            self.app_metrics.enter_worker(record.slot)  # before the app is imported
        if self.pidfile is not None:
            # A worker (the app) must not be able to write the master's pidfile.
            self.pidfile.close_copy()
        # Become `user`/`group` before anything of the app runs. Resolved again here (cheap)
        # because a HUP may have changed them; an error fails this boot, not the master.
        try:
            become_the_workers_user(self.settings, self.loaded.sources)
        except (privileges.PrivilegeError, OSError) as exc:
            self.log.error("worker.boot_failed", worker=record.pid, error=str(exc))
            return ExitCode.BOOT_FAILED
        _set_title(f"wsgid: worker [{self.app_label}]")
        worker: Worker = self.worker_class(
            WorkerContext(
                settings=self.settings,
                listeners=self.listeners,
                # First generation of a daemon: the launcher shows why a worker cannot boot.
                logs=(
                    self.readiness.tee_logs(self.logs)
                    if self.readiness is not None and self.readiness.pending
                    else self.logs
                ),
                scoreboard=self.table.scoreboard,
                slot=record.slot,
                boot_fd=self.table.boot_w,
                app=self.app,
                age=record.age,
                hooks=self.hooks,
                master_pid=self.pid,
                modules_fd=-1 if self.reloader is None else self.reloader.report_w,
                tls=self.tls,
            )
        )
        self.hooks.call("post_fork", self, worker)
        try:
            return worker.run()
        finally:
            # In the worker as it leaves, as in gunicorn: where a flush-on-exit recipe
            # (OpenTelemetry's shutdown(), Sentry's flush()) still has the app's state. Not
            # for a worker killed, nor one aborted at its timeout (its app is stuck).
            self.hooks.call("worker_exit", self, worker)

    # What each signal does, run by the loop in the order the signals came. While the master
    # stops, only the stop signals still act (_handle_signal).
    _ACTIONS: ClassVar[dict[signal.Signals, Callable[[Master, str], None]]] = {
        # Graceful stop: workers finish their requests within graceful_timeout, then are
        # killed; exit 0. A second stop signal makes the stop fast.
        signal.SIGTERM: _graceful_stop,
        signal.SIGQUIT: _graceful_stop,
        signal.SIGINT: _fast_stop,
        # Reload: re-read the configuration, start a new generation of workers, then
        # gracefully stop the old one once the new one has booted.
        signal.SIGHUP: _reload,
        signal.SIGTTIN: _one_more_worker,  # up to MAX_WORKERS
        signal.SIGTTOU: _one_fewer_worker,  # down to one
        signal.SIGUSR1: _reopen_logs,  # here and in every worker
        # Binary upgrade: exec a new master that inherits the listeners.
        signal.SIGUSR2: _upgrade,
        # Gracefully stop every worker, keep the master (after USR2).
        signal.SIGWINCH: _stop_all_workers,
        signal.SIGCHLD: _child_exited,
    }


def scaled(target: int, step: int) -> tuple[int, str | None]:
    """The worker count after TTIN (step +1) or TTOU (-1), and why it is unchanged, if it is."""
    wanted = target + step
    if wanted < 1:
        return target, "never fewer than one worker"
    if wanted > MAX_WORKERS:
        return target, f"never more than {MAX_WORKERS} workers"
    return wanted, None


def _livez() -> Page:
    from wsgid.side_listener import TEXT

    return "200 OK", TEXT, b"ok\n"


# What poll(2) reports for a descriptor that select(2) would call readable, or writable: a
# peer's hang-up or an error is for the reader or writer to find out.
_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


def _wait(readers: list[int], writers: list[int], timeout: float) -> tuple[list[int], list[int]]:
    """The descriptors of `readers` ready to read and of `writers` ready to write, waiting up
    to `timeout` seconds: select(2)'s answer, by poll(2).

    select(2) refuses a descriptor numbered FD_SETSIZE (1024) or more, and the master's own are
    numbered after whatever a preloaded app opened at import (a connection pool, a model's
    files): poll(2) takes any number.
    """
    masks: dict[int, int] = {}
    for fd in readers:
        masks[fd] = select.POLLIN | select.POLLPRI
    for fd in writers:
        masks[fd] = masks.get(fd, 0) | select.POLLOUT
    poller = select.poll()
    for fd, mask in masks.items():
        poller.register(fd, mask)
    events = dict(poller.poll(timeout * 1000))
    readable = [fd for fd in readers if events.get(fd, 0) & _READABLE]
    writable = [fd for fd in writers if events.get(fd, 0) & _WRITABLE]
    return readable, writable


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _set_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:
        pass


def _version() -> str:
    from wsgid import __version__

    return __version__


# What stops a start as a configuration error (exit 2), here and in `wsgid check`.
CONFIG_ERRORS = (ConfigError, HookError, UnknownWorkerClass, privileges.PrivilegeError)


def resolve_start(
    settings: RuntimeSettings, sources: Mapping[str, str], log: Any
) -> tuple[Hooks, type[Worker]]:
    """The hooks (imported, their arity checked) and the worker class of a start or a
    reload, after checking that the workers can become `user`/`group`; one of CONFIG_ERRORS
    if not. Shared with `wsgid check` (`check_start`), so that both fail alike."""
    hooks = Hooks(settings, log, sources)
    try:
        worker_class = resolve(settings.worker_kind)
    except UnknownWorkerClass as exc:
        source = sources.get("worker_class", "default")
        raise UnknownWorkerClass(f"{exc} (worker_class from {source})") from None
    # Checked now so that a misspelt user is exit 2 here, not a worker boot failure.
    privileges.resolve(settings.user, settings.group, sources)
    return hooks, worker_class


def become_the_workers_user(settings: RuntimeSettings, sources: Mapping[str, str]) -> None:
    """Switch this process to `user`/`group` for good, as a worker does before anything of
    the app runs (and `wsgid check` before it imports the app); PrivilegeError or OSError
    if it cannot."""
    credentials = privileges.resolve(
        settings.user, settings.group, sources, initgroups=settings.initgroups
    )
    if credentials is not None:
        privileges.drop(credentials)


def check_start(loaded: LoadedSettings) -> None:
    """`wsgid check`: raise what would stop a start of `loaded` before a worker is forked
    (one of CONFIG_ERRORS), meeting the master's steps in its order, by the same functions,
    without their side effects:

    - `-e KEY=VALUE`, set in this process's environment as the master sets it in its own
      (where the application and the paths below are looked up);
    - `chdir` and `pythonpath` on sys.path, where the master imports the hooks and the
      logging configuration's classes from (`loader.extend_import_path`);
    - the logs (`Master.__init__`): `logs.check`, which opens no new file;
    - the hooks, the worker class and who the workers run as: `resolve_start` itself;
    - TLS: the files, loaded as `tls.build` loads them; the ssl_context hook is not run (it
      belongs to a serving master);
    - the prometheus multiprocess directory and the control socket's directory:
      `app_metrics.check` and `control.check_place`, which make nothing.

    Not checked: the listeners and the pidfile, which a server already running with this
    configuration holds (a bind, exit 5, and a pidfile, exit 7, fail serving alone).
    """
    settings, sources = loaded.settings, loaded.sources
    if settings.daemon:
        _refuse_daemon_as_pid1(loaded)
    apply_raw_env(settings.raw_env)
    loader.extend_import_path(settings.chdir, settings.pythonpath)
    logs_mod.check(settings, sources)
    resolve_start(settings, sources, log=None)  # `check` calls no hook: no log needed
    if settings.certfile is not None:
        from wsgid import tls

        tls.build(settings, sources)
    if _manages_app_metrics(settings):
        from wsgid import app_metrics

        try:
            app_metrics.check(settings.prometheus_multiproc_dir, os.environ)
        except app_metrics.AppMetricsError as exc:
            raise ConfigError(str(exc)) from exc  # as `Master._prepare_app_metrics` does
    from wsgid import control

    path = control.socket_path(settings.control_socket, settings.control_socket_disable, os.environ)
    if path is not None:
        control.check_place(path)


def _refuse_daemon_as_pid1(loaded: LoadedSettings) -> None:
    """ConfigError if `daemon` is asked of PID 1 of a pid namespace (a container): the
    detached server would be its child, which the kernel kills as PID 1 exits, so the
    container would end at once, with status 0 and nothing serving (gunicorn's fate too)."""
    if os.getpid() != 1:
        return
    source = loaded.sources.get("daemon", "default")
    raise ConfigError(
        f"daemon = true (from {source}): wsgid is PID 1 of its pid namespace (a container),"
        " where every process ends when PID 1 exits, so the detached server would be killed"
        " as it started; drop daemon (the container's runtime supervises wsgid in the"
        " foreground)"
    )


def _manages_app_metrics(settings: RuntimeSettings) -> bool:
    """Whether wsgid manages the app's prometheus multiprocess directory ("auto": only for
    the /metrics of metrics_bind)."""
    setting = settings.prometheus_multiproc_dir
    return setting != "off" and (setting != "auto" or settings.metrics_bind is not None)


# The values the environment had, before raw_env set them, of the keys it has set (None: not
# set): a reload whose raw_env drops a key gives it back, as gunicorn's reload does.
_before_raw_env: dict[str, str | None] = {}


def apply_raw_env(raw_env: tuple[str, ...] | list[str]) -> None:
    """`-e KEY=VALUE`: set in the master's environment, inherited by workers. On a reload, the
    keys an earlier raw_env set and this one does not get their earlier value back."""
    wanted = dict(item.partition("=")[::2] for item in raw_env)
    for key, value in list(_before_raw_env.items()):
        if key not in wanted:
            del _before_raw_env[key]
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for key, value in wanted.items():
        _before_raw_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value


def run(
    loaded: LoadedSettings,
    reload: Callable[[], LoadedSettings] | None = None,
    app: Any = None,
) -> int:
    """Serve until stopped; the exit status for `wsgid`.

    `app`: an application already built (pserve's), served as if preloaded; None: the one
    the settings name, loaded in each worker or, with preload_app, here.
    """
    apply_raw_env(loaded.settings.raw_env)
    loader.extend_import_path(loaded.settings.chdir, loaded.settings.pythonpath)
    readiness: Readiness | None = None
    # A master exec'd by USR2 is already detached: daemonizing again would fork it away
    # from the old master, which waits for this very pid.
    if loaded.settings.daemon and not handoff.from_upgrade(os.environ):
        _refuse_daemon_as_pid1(loaded)
        from wsgid import daemonize

        readiness = daemonize.detach(loaded.settings)  # the launching process exits in there
    try:
        code = Master(loaded, reload, readiness, app).run()
    except BaseException as exc:
        if readiness is not None:
            if isinstance(exc, ConfigError):  # e.g. a log file that cannot be opened
                readiness.failed(ExitCode.CONFIG, str(exc))
            else:
                readiness.failed(ExitCode.ERROR, f"unexpected error: {type(exc).__name__}: {exc}")
        raise
    if readiness is not None and readiness.pending:
        readiness.not_started(code, loaded.settings.errorlog)
    return code
