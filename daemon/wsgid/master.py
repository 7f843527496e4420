"""The master process: binds, forks and supervises the workers.

Owns: the process model. The master binds (or inherits) every listener
before forking, keeps `workers` workers running, replaces the ones that die,
aborts the ones whose heartbeat stops for `timeout` seconds, and turns
signals into actions. It knows nothing of HTTP.

Signals are only recorded by their handlers (a queue plus the wake-up fd);
the main loop acts on them, so no real work ever runs inside a handler.

| signal      | action                                                          |
| ----------- | --------------------------------------------------------------- |
| TERM, QUIT  | graceful stop: workers finish in-flight requests within         |
|             | graceful_timeout, then are killed; exit 0                       |
| INT         | fast stop; a second stop signal also makes a stop fast          |
| HUP         | reload: re-read the configuration, start a new generation of    |
|             | workers, then gracefully stop the old one once the new booted   |
| TTIN / TTOU | one worker more / fewer (from one to MAX_WORKERS)                |
| USR1        | reopen log files, here and in every worker                      |
| USR2        | binary upgrade: exec a new master that inherits the listeners   |
| WINCH       | gracefully stop every worker, keep the master (after USR2)      |
| CHLD        | reap, log how the child ended, replace workers                  |

Generations: every HUP starts a generation. Its workers are spawned next to
the old ones; only when all of them have booted are the old ones stopped, so
a reload never leaves the server without workers, and a reload whose
configuration or application is broken is abandoned with the old generation
still serving.

Boot failures: a worker that exits before it has booted failed to boot,
however it ended (the boot-failure or app-load-failure code, any other code,
0 included, or a signal). If the first generation has not booted yet, the
master stops with ExitCode.APP_LOAD_FAILED or ExitCode.BOOT_FAILED instead of forking
again; during a reload the reload fails; later, the replacement waits for a
backoff. A fork that fails (no pids, no memory) is retried with the same
backoff: the master never dies of it.

The workers die with the master: each has the kernel send it TERM when the
master exits, and checks its parent once a second (workers/base.py).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from wsgid import build, loader, privileges, processes
from wsgid import listeners as listeners_mod
from wsgid import logs as logs_mod
from wsgid.exitcodes import ExitCode
from wsgid.heartbeat import HeartbeatTable
from wsgid.hooks import HookError, Hooks
from wsgid.logs import escape
from wsgid.pidfile import Pidfile, PidfileError
from wsgid.runtime import MAX_WORKERS, ConfigError, LoadedSettings, RuntimeSettings
from wsgid.systemd import Notifier, inherited_sockets
from wsgid.workers import UnknownWorkerClass, resolve
from wsgid.workers.base import (
    BOOTED,
    WORKER_SIGNALS,
    Worker,
    WorkerContext,
)

if TYPE_CHECKING:
    from wsgid.daemonize import Readiness


# A reload runs two generations side by side, each of up to MAX_WORKERS. Workers retired
# earlier and still finishing their requests may hold slots too: a spawn then waits.
HEARTBEAT_SLOTS = 2 * MAX_WORKERS
TICK = 1.0
FAST_STOP_GRACE = 2.0  # seconds workers get to exit after a fast-stop signal
ABORT_GRACE = 2.0  # seconds a timed-out worker gets to log its stacks before SIGKILL
BACKOFF_MAX = 10.0

# Passed to a re-exec'd master (USR2). Not WSGID_*: those are settings.
ENV_INHERIT_FDS = "_WSGID_INHERIT_FDS"
ENV_OLD_MASTER = "_WSGID_OLD_MASTER"

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)
_HANDLED = (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU,
            signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)  # fmt: skip


@dataclass
class WorkerProcess:
    """The master's record of one forked worker."""

    pid: int
    slot: int
    generation: int
    age: int
    spawned: float
    booted: bool = False
    retiring: bool = False  # sent TERM: finishing its requests
    aborted_at: float = 0.0  # sent SIGABRT for a missed heartbeat
    extra: dict[str, Any] = field(default_factory=dict)  # free for hooks


class Master:
    """Supervises generations of workers over a set of listeners."""

    def __init__(
        self,
        loaded: LoadedSettings,
        reload: Callable[[], LoadedSettings] | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self.loaded = loaded
        self.readiness = readiness  # --daemon: the launching command waits on it
        self.settings = loaded.settings
        self.reload_settings = reload
        self.logs = logs_mod.setup(self.settings)
        self.log = self.logs.error.bind(pid=os.getpid())
        if readiness is not None:
            self.log = readiness.tee(self.log)  # start-up errors also reach the launcher
        self.pid = os.getpid()
        self.cwd = os.getcwd()
        self.app_label = self.settings.proc_name or self.settings.app or "wsgid"
        self.listeners: list[listeners_mod.Listener] = []
        self.workers: dict[int, WorkerProcess] = {}
        self.free_slots = deque(range(HEARTBEAT_SLOTS))
        self.signals: deque[int] = deque()
        self.generation = 1
        self.target = self.settings.workers
        self.ready = False  # the first generation has booted
        # (old generation, old settings) while a reload runs
        self.reload_from: tuple[int, RuntimeSettings] | None = None
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = int(ExitCode.OK)
        self.age = 0
        self.crash_streak = 0
        self.next_spawn = 0.0
        self.spawn_deferred = False  # logged that no heartbeat slot is free
        self.app: Any = None
        self.pidfile: Pidfile | None = None
        self.upgrade_pid = 0  # the new master we exec'd on USR2, while it runs
        self.old_master = int(os.environ.pop(ENV_OLD_MASTER, "0") or 0)
        self.notifier = Notifier(os.environ)
        self.hooks: Hooks

    # start-up

    def run(self) -> int:
        _set_title(f"wsgid: master [{self.app_label}]")
        try:
            self.hooks = Hooks(self.settings, self.log)
            self.worker_class = resolve(self.settings.worker_kind)
        except (HookError, UnknownWorkerClass) as exc:
            return self._fail_start(str(exc), ExitCode.CONFIG)
        try:
            # Checked now so that a misspelt user is exit 2 here, not a worker boot failure.
            privileges.resolve(self.settings.user, self.settings.group, self.loaded.sources)
        except privileges.PrivilegeError as exc:
            return self._fail_start(str(exc), ExitCode.CONFIG)
        self.hooks.call("on_starting", self)
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
                self.listeners = listeners_mod.bind_all(
                    self._binds(), self.settings.backlog, self._on_bind_retry, self._inherited()
                )
            except listeners_mod.ListenerError as exc:
                return self._fail_start(str(exc), ExitCode.LISTEN_FAILED)
            if self.settings.preload_app:
                try:
                    self.app = loader.load_app(self.settings)
                except loader.AppLoadError as exc:
                    return self._fail_start(str(exc), ExitCode.APP_LOAD_FAILED)
            self.heartbeat = HeartbeatTable(HEARTBEAT_SLOTS)
            self.boot_r, self.boot_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._init_signals()
            if self.old_master:
                self.notifier.main_pid(self.pid)
            self.log.info(
                "master.started",
                version=_version(),
                build=build(),
                listening=",".join(str(lst) for lst in self.listeners),
                workers=self.target,
                worker_class=self.worker_class.kind,
            )
            self.notifier.status(f"booting {self.target} workers")
            self._manage_workers()
            return self._loop()
        finally:
            listeners_mod.close_all(self.listeners)
            if self.pidfile is not None:
                self.pidfile.remove()
            self.hooks.call("on_exit", self)

    def _binds(self) -> tuple[str, ...]:
        """The configured binds; none (serve what was passed) under bare socket activation.

        A master exec'd on USR2 by such a master serves what it was passed too: binding the
        default address instead would leave systemd's socket without anyone accepting.
        """
        passed = "LISTEN_FDS" in os.environ or ENV_INHERIT_FDS in os.environ
        if self.loaded.sources.get("bind") == "default" and passed:
            return ()
        return self.settings.bind

    def _inherited(self) -> list[listeners_mod.Inherited]:
        """Sockets from the previous master (USR2) or from systemd."""
        fds = os.environ.pop(ENV_INHERIT_FDS, "")
        if fds:
            import socket

            inherited = []
            for entry in fds.split(","):  # FD:NAME:OWNED, see _upgrade
                fd, _, rest = entry.partition(":")
                name, _, owned = rest.partition(":")
                if fd.isdigit():
                    sock = socket.socket(fileno=int(fd))
                    inherited.append(
                        listeners_mod.Inherited(sock, name=name or None, owned=owned != "0")
                    )
            return inherited
        return inherited_sockets(os.environ)

    def _fail_start(self, message: str, code: int) -> int:
        self.log.error("master.start_failed", error=message, exit_code=int(code))
        if self.settings.errorlog != "-":
            print(f"wsgid: {escape.printable(message)}", file=sys.stderr)
        return code

    def _on_bind_retry(self, address: str, exc: OSError) -> None:
        self.log.warning("listener.busy", address=address, error=exc.strerror, action="retrying")

    def _init_signals(self) -> None:
        for sig in _HANDLED:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    # the loop

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            timeout = min(TICK, self.notifier.watchdog_due_in(now))
            if self.next_spawn and self._current_count() < self.target:
                timeout = min(timeout, max(0.0, self.next_spawn - now))
            if not self.ready and not self.stopping:
                # A slow first boot is progress, not a hang: keep systemd's
                # start timeout ahead of it (workers that hang are killed by
                # `timeout` anyway).
                self.notifier.extend_timeout(max(self.settings.timeout, 30.0) + TICK)
            try:
                readable, _, _ = select.select([self.wake_r, self.boot_r], [], [], timeout)
            except InterruptedError:
                readable = []
            now = time.monotonic()
            self.notifier.watchdog(now)
            if self.wake_r in readable:
                _drain(self.wake_r)
            if self.boot_r in readable:
                self._read_boots()
            while self.signals:
                self._handle_signal(self.signals.popleft())
            self._reap()
            if self.stopping:
                if not self.workers:
                    break
                if time.monotonic() >= self.stop_deadline:
                    self._kill_all(signal.SIGKILL)
                continue
            self._check_old_master()
            self._check_timeouts()
            self._manage_workers()
        self.log.info("master.stopped", exit_code=self.exit_code)
        return self.exit_code

    def _handle_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum in _STOP_SIGNALS:
            self._stop(fast=signum == signal.SIGINT or self.stopping, reason=name)
        elif self.stopping or signum == signal.SIGCHLD:
            return  # children are reaped on every turn of the loop
        elif signum == signal.SIGHUP:
            self._reload()
        elif signum in (signal.SIGTTIN, signal.SIGTTOU):
            target, refused = scaled(self.target, 1 if signum == signal.SIGTTIN else -1)
            if refused:
                self.log.info(
                    "master.workers_unchanged", workers=self.target, signal=name, reason=refused
                )
            self._set_target(target, name)
        elif signum == signal.SIGWINCH:
            self.log.info("master.winch", action="stopping all workers")
            self._set_target(0, name)
        elif signum == signal.SIGUSR1:
            self.log.info("master.reopen_logs")
            self.logs.reopen()
            self._signal_workers(signal.SIGUSR1)
        elif signum == signal.SIGUSR2:
            self._upgrade()

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
        self.notifier.stopping()
        self.stopping = True
        self.stop_deadline = min(self.stop_deadline, deadline) if self.stop_deadline else deadline
        # Stop accepting at once. Workers close their copies on TERM, but a
        # sync worker busy in the app would keep its copy (and the kernel
        # keep queueing connections) until the app returns: shutting the
        # listening socket down stops it for every process at once. Not when
        # another master shares it (an upgrade in progress), nor for
        # systemd's sockets, which outlive us.
        shared = self.upgrade_pid or (self.old_master and processes.running(self.old_master))
        if not shared:
            for listener in self.listeners:
                if listener.created:
                    with contextlib.suppress(OSError):
                        listener.sock.shutdown(socket.SHUT_RDWR)
        listeners_mod.close_all(self.listeners, unlink=not self.upgrade_pid)
        self.listeners = []
        self._signal_workers(signal.SIGQUIT if fast else signal.SIGTERM)

    def _signal_workers(self, sig: int) -> None:
        for pid in list(self.workers):
            _kill(pid, sig)

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.workers):
            self.log.warning("worker.killed", worker=pid, reason="graceful_timeout")
            _kill(pid, sig)
        self.stop_deadline = time.monotonic() + FAST_STOP_GRACE

    # reload (HUP)

    def _reload(self) -> None:
        if self.reload_settings is None:
            self.log.warning("reload.unavailable", reason="no configuration source to re-read")
            return
        if self.reload_from is not None:
            self.log.warning("reload.ignored", reason="a reload is already in progress")
            return
        self.notifier.reloading()
        try:
            loaded = self.reload_settings()
            new = loaded.settings
            hooks = Hooks(new, self.log)
            worker_class = resolve(new.worker_kind)
            # Opened now, so that a log file that cannot be opened fails the
            # reload, not the master.
            new_logs = logs_mod.setup(new) if logs_mod.changed(self.settings, new) else None
        except Exception as exc:  # a ConfigError, HookError, LogSetupError: keep serving
            self.log.error("reload.failed", error=str(exc), action="keeping the running workers")
            self._announce_ready()
            return
        if new.bind != self.settings.bind:
            try:
                self._rebind(new)
            except listeners_mod.ListenerError as exc:
                self.log.error(
                    "reload.failed", error=str(exc), action="keeping the running workers"
                )
                if new_logs is not None:
                    new_logs.close()
                self._announce_ready()
                return
        self.hooks.call("on_reload", self)
        self.reload_from = (self.generation, self.settings)
        self.loaded, self.settings, self.hooks, self.worker_class = loaded, new, hooks, worker_class
        if new_logs is not None:
            old_logs, self.logs = self.logs, new_logs
            self.log = self.logs.error.bind(pid=self.pid)
            old_logs.close()  # the old workers keep their own descriptors
        self.generation += 1
        self._set_target(new.workers, "SIGHUP")
        self.log.info("reload.started", generation=self.generation, workers=self.target)

    def _rebind(self, new: RuntimeSettings) -> None:
        """Bind added addresses, keep the others, close removed ones (HUP)."""
        keep = {lst.spec.text: lst for lst in self.listeners}
        opened = listeners_mod.bind_all(
            [b for b in new.bind if b not in keep], new.backlog, self._on_bind_retry
        )
        by_text = {lst.spec.text: lst for lst in opened}
        removed = [lst for text, lst in keep.items() if text not in new.bind]
        self.listeners = [keep.get(b) or by_text[b] for b in new.bind]
        listeners_mod.close_all(removed)
        self.log.info("listeners.changed", listening=",".join(str(lst) for lst in self.listeners))

    def _reload_done(self) -> None:
        """The new generation has booted: stop the old one gracefully."""
        assert self.reload_from is not None
        self.reload_from = None
        for worker in self.workers.values():
            if worker.generation < self.generation and not worker.retiring:
                self._retire(worker)
        self.log.info("reload.done", generation=self.generation)
        self._announce_ready()

    def _reload_failed(self, reason: str) -> None:
        """A worker of the new generation could not boot: go back to the old one."""
        assert self.reload_from is not None
        old_generation, old_settings = self.reload_from
        self.reload_from = None
        failed = self.generation
        for worker in self.workers.values():
            if worker.generation == failed and not worker.retiring:
                self._retire(worker)
        self.generation, self.settings = old_generation, old_settings
        self.target = old_settings.workers
        self.hooks = Hooks(old_settings, self.log)
        self.worker_class = resolve(old_settings.worker_kind)
        self.log.error("reload.failed", error=reason, action="keeping the running workers")
        self._announce_ready()

    def _announce_ready(self) -> None:
        self.notifier.ready(f"serving with {self._current_count()} workers")

    # upgrade (USR2)

    def _upgrade(self) -> None:
        if self.upgrade_pid or self.old_master:
            self.log.warning("upgrade.ignored", reason="an upgrade is already in progress")
            return
        fds = [lst.fileno() for lst in self.listeners]
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
            return
        try:
            signal.set_wakeup_fd(-1)
            for fd in fds:
                os.set_inheritable(fd, True)
            env = dict(os.environ)
            # FD:NAME:OWNED: the name keeps `bind = systemd:NAME` working in the new master;
            # OWNED=0 for systemd's sockets, whose files are never ours to unlink.
            env[ENV_INHERIT_FDS] = ",".join(
                f"{lst.fileno()}:{lst.spec.name or ''}:{int(lst.created)}" for lst in self.listeners
            )
            env[ENV_OLD_MASTER] = str(self.pid)
            os.chdir(self.cwd)
            # The interpreter's own argv, so a wrapper script or `-I` comes back too.
            os.execve(sys.executable, list(sys.orig_argv), env)
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

    def _read_boots(self) -> None:
        try:
            data = os.read(self.boot_r, 4096)
        except BlockingIOError:
            return
        for offset in range(0, len(data) - len(data) % BOOTED.size, BOOTED.size):
            (pid,) = BOOTED.unpack_from(data, offset)
            worker = self.workers.get(pid)
            if worker is None:
                continue
            worker.booted = True
            self.crash_streak = 0
            self.log.info("worker.booted", worker=pid, generation=worker.generation)
        self._check_generation_booted()

    def _current_count(self) -> int:
        return sum(
            1 for w in self.workers.values() if w.generation == self.generation and not w.retiring
        )

    def _check_generation_booted(self) -> None:
        current = [
            w for w in self.workers.values() if w.generation == self.generation and not w.retiring
        ]
        if len(current) < self.target or not all(w.booted for w in current):
            return
        if self.reload_from is not None:
            self._reload_done()
        elif not self.ready:
            self.ready = True
            self.hooks.call("when_ready", self)
            self.log.info("master.ready", workers=len(current))
            self._announce_ready()
            if self.readiness is not None:
                self.readiness.ready()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.upgrade_pid:
                self.upgrade_pid = 0
                self.log.error("upgrade.failed", new_master=pid, status=_describe(status))
                continue
            worker = self.workers.get(pid)
            if worker is None:
                continue  # not ours: as PID 1 we adopt orphans; reap them quietly
            if not worker.booted:
                self._read_boots()  # it may have booted just before it exited
            del self.workers[pid]
            self.free_slots.append(worker.slot)
            self._worker_exited(worker, status)
            self.hooks.call("child_exit", self, worker)
            self.hooks.call("worker_exit", self, worker)

    def _worker_exited(self, worker: WorkerProcess, status: int) -> None:
        expected = worker.retiring or self.stopping
        if not worker.booted and not expected:
            self._boot_failed(worker, status)
            return
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        log = self.log.info if expected or code == 0 else self.log.warning
        log("worker.exited", worker=worker.pid, status=_describe(status))
        quick = time.monotonic() - worker.spawned < 1.0
        if not expected and code != 0 and quick:  # a crash, not a recycled worker
            self._backoff()

    def _boot_failed(self, worker: WorkerProcess, status: int) -> None:
        """A worker exited before it booted, however it ended: it failed to boot."""
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        app_load = code == ExitCode.APP_LOAD_FAILED
        exit_code = int(ExitCode.APP_LOAD_FAILED if app_load else ExitCode.BOOT_FAILED)
        if app_load:
            reason = "app could not be loaded"  # the worker logged why
        elif code == ExitCode.BOOT_FAILED:
            reason = "boot error"
        elif worker.aborted_at:
            reason = f"did not boot within the timeout ({self.settings.timeout:g} s)"
        else:
            reason = f"{_describe(status)} before it booted"
        self.log.error(
            "worker.boot_failed", worker=worker.pid, exit_code=exit_code,
            status=_describe(status), reason=reason,
        )  # fmt: skip
        if self.reload_from is not None and worker.generation == self.generation:
            self._reload_failed(reason)
        elif not self.ready:
            # The first generation cannot boot: it would not boot next time either.
            self.exit_code = exit_code
            self._stop(fast=True, reason="worker boot failure")
        else:
            self._backoff()

    def _backoff(self) -> None:
        """Delay the next spawn after quick crashes: 0.1 s, doubling up to BACKOFF_MAX."""
        self.crash_streak += 1
        delay = min(BACKOFF_MAX, 0.1 * 2 ** (self.crash_streak - 1))
        self.next_spawn = time.monotonic() + delay
        if self.crash_streak > 1:
            self.log.warning("worker.respawn_delayed", seconds=round(delay, 2))

    def _check_timeouts(self) -> None:
        timeout = self.settings.timeout
        if timeout <= 0:
            return
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.aborted_at:
                if now - worker.aborted_at > ABORT_GRACE:
                    _kill(worker.pid, signal.SIGKILL)
            elif now - self.heartbeat.last(worker.slot) > timeout:
                self.log.error(
                    "worker.timeout", worker=worker.pid, timeout=timeout, action="aborting"
                )
                worker.aborted_at = now
                _kill(worker.pid, signal.SIGABRT)

    def _retire(self, worker: WorkerProcess) -> None:
        worker.retiring = True
        _kill(worker.pid, signal.SIGTERM)

    def _manage_workers(self) -> None:
        current = sorted(
            (
                w
                for w in self.workers.values()
                if w.generation == self.generation and not w.retiring
            ),
            key=lambda w: w.age,
        )
        for worker in current[: max(0, len(current) - self.target)]:
            self._retire(worker)  # TTOU / WINCH: the oldest go first
        missing = self.target - len(current)
        while missing > 0 and time.monotonic() >= self.next_spawn and self._spawn():
            missing -= 1

    def _spawn(self) -> bool:
        """Fork one worker of the current generation; False if it must wait (logged)."""
        if not self.free_slots:
            # Only workers still finishing their requests after earlier reloads hold the
            # slots: this spawn waits for one of them to exit (next turn of the loop).
            if not self.spawn_deferred:
                self.spawn_deferred = True
                self.log.warning(
                    "worker.spawn_deferred", workers=len(self.workers),
                    reason="no free heartbeat slot until a stopping worker exits",
                )  # fmt: skip
            return False
        self.spawn_deferred = False
        slot = self.free_slots.popleft()
        self.heartbeat.beat(slot)
        self.age += 1
        record = WorkerProcess(0, slot, self.generation, self.age, time.monotonic())
        self.hooks.call("pre_fork", self, record)
        # Until the child has its own handlers, a signal the master forwards
        # to it (a stop right after a spawn) would meet the master's handlers
        # and be lost, leaving a worker that ignores TERM. Blocked, it waits
        # pending until the worker unblocks it (Worker._init_signals).
        signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        # Frozen objects are never scanned by the cyclic GC. In the worker, everything it
        # inherits stays frozen: a full collection there would otherwise write to every object
        # the master made, copying most of the master's memory into the worker (4 MiB more
        # for hello world after one `gc.collect()`, measured). The master unfreezes at once
        # and collects as before.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            # EAGAIN at a pids limit (a cgroup's pids.max, RLIMIT_NPROC), ENOMEM: the
            # master keeps serving with the workers it has and retries after a backoff.
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            self.free_slots.appendleft(slot)
            self.log.error("worker.fork_failed", error=str(exc))
            self._backoff()
            return False
        if pid:
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
            record.pid = pid
            self.workers[pid] = record
            return True
        code: int = ExitCode.ERROR
        try:
            code = self._worker_main(record)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else ExitCode.ERROR
        except BaseException:
            with contextlib.suppress(BaseException):
                self.log.exception("worker.crashed")
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _worker_main(self, record: WorkerProcess) -> int:
        """The first code a forked worker runs: drop master state, become a worker."""
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        for fd in (self.wake_r, self.wake_w, self.boot_r):
            os.close(fd)
        if self.pidfile is not None:
            # A worker (the app) must not be able to write the master's pidfile.
            self.pidfile.close_copy()
        record.pid = os.getpid()
        # Become `user`/`group` before anything of the app runs. Resolved again here (cheap)
        # because a HUP may have changed them; an error fails this boot, not the master.
        try:
            credentials = privileges.resolve(
                self.settings.user, self.settings.group, self.loaded.sources
            )
            if credentials is not None:
                privileges.drop(credentials)
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
                heartbeat=self.heartbeat,
                slot=record.slot,
                boot_fd=self.boot_w,
                app=self.app,
                age=record.age,
                hooks=self.hooks,
                master_pid=self.pid,
            )
        )
        self.hooks.call("post_fork", self, worker)
        return worker.run()


def scaled(target: int, step: int) -> tuple[int, str | None]:
    """The worker count after TTIN (step +1) or TTOU (-1), and why it is unchanged, if it is."""
    wanted = target + step
    if wanted < 1:
        return target, "never fewer than one worker"
    if wanted > MAX_WORKERS:
        return target, f"never more than {MAX_WORKERS} workers"
    return wanted, None


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _set_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except ImportError:
        pass


def _version() -> str:
    from wsgid import __version__

    return __version__


def apply_raw_env(raw_env: tuple[str, ...] | list[str]) -> None:
    """`-e KEY=VALUE`: set in the master's environment, inherited by workers."""
    for item in raw_env:
        key, _, value = item.partition("=")
        os.environ[key] = value


def run(loaded: LoadedSettings, reload: Callable[[], LoadedSettings] | None = None) -> int:
    """Serve until stopped; the exit status for `wsgid`."""
    apply_raw_env(loaded.settings.raw_env)
    readiness: Readiness | None = None
    # A master exec'd by USR2 is already detached: daemonizing again would fork it away
    # from the old master, which waits for this very pid.
    if loaded.settings.daemon and not os.environ.get(ENV_OLD_MASTER):
        from wsgid import daemonize

        readiness = daemonize.detach(loaded.settings)  # the launching process exits in there
    else:
        privileges.apply_umask(loaded.settings, loaded.sources)
    try:
        code = Master(loaded, reload, readiness).run()
    except BaseException as exc:
        if readiness is not None:
            if isinstance(exc, ConfigError):  # e.g. a log file that cannot be opened
                readiness.failed(ExitCode.CONFIG, str(exc))
            else:
                readiness.failed(ExitCode.ERROR, f"unexpected error: {type(exc).__name__}: {exc}")
        raise
    if readiness is not None and readiness.pending:
        readiness.failed(code, _start_failure(code, loaded.settings.errorlog))
    return code


# What the command that launched `wsgid --daemon` says for each way the daemon did not start.
_START_FAILURES: dict[int, str] = {
    ExitCode.OK: "the server stopped before it was ready",
    ExitCode.CONFIG: "configuration error",
    ExitCode.BOOT_FAILED: "a worker failed to boot",
    ExitCode.APP_LOAD_FAILED: "the application could not be loaded",
    ExitCode.LISTEN_FAILED: "a listener could not be bound",
    ExitCode.PIDFILE: "the pidfile could not be created, or another instance holds it",
}


def _start_failure(code: int, errorlog: str) -> str:
    """What the command that launched `wsgid --daemon` prints when the daemon did not start."""
    what = _START_FAILURES.get(code, "the server failed to start")
    where = "" if errorlog == "-" else f"; details in the error log {errorlog}"
    return f"{what} (exit status {int(code) or 1}){where}"
