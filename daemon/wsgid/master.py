"""The master process: binds, forks and supervises the workers.

Owns: the process model. It binds every listener before forking, forks
`workers` workers, reaps and replaces the ones that die, kills the ones whose
heartbeat stops for `timeout` seconds, and turns signals into actions. It
knows nothing of HTTP.

Signals are only recorded by their handlers (a queue plus the wake-up fd);
the main loop acts on them, so no real work ever runs inside a handler.

| signal      | action                                                    |
| ----------- | --------------------------------------------------------- |
| TERM, QUIT  | graceful stop: workers finish in-flight requests within    |
|             | graceful_timeout, then are killed; exit 0                  |
| INT         | fast stop; a second stop signal also makes a stop fast     |
| CHLD        | reap, log how the worker ended, replace it                 |

If a worker exits with the boot-failure or app-load-failure code before it
ever booted, the master stops with that code instead of forking again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from wsgid import listeners as listeners_mod
from wsgid import loader
from wsgid import logs as logs_mod
from wsgid.heartbeat import HeartbeatTable
from wsgid.workers import UnknownWorkerClass, resolve
from wsgid.workers.base import (
    BOOTED,
    EXIT_APP_LOAD_FAILED,
    EXIT_BOOT_FAILED,
    Worker,
    WorkerContext,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_LISTEN_FAILED = 5

HEARTBEAT_SLOTS = 4096
TICK = 1.0
FAST_STOP_GRACE = 2.0  # seconds workers get to exit after a fast-stop signal

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)
_HANDLED = (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU,
            signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)  # fmt: skip


@dataclass
class WorkerProcess:
    """The master's record of one forked worker."""

    pid: int
    slot: int
    spawned: float
    booted: bool = False


class Master:
    """Supervises one generation of workers over a set of listeners."""

    def __init__(self, loaded: Any, reload: Callable[[], Any] | None = None) -> None:
        self.loaded = loaded
        self.settings = loaded.settings
        self.reload_settings = reload
        self.logs = logs_mod.setup(self.settings)
        self.log = self.logs.error.bind(pid=os.getpid())
        self.app_label = self.settings.proc_name or self.settings.app or "wsgid"
        self.listeners: list[listeners_mod.Listener] = []
        self.workers: dict[int, WorkerProcess] = {}
        self.free_slots = deque(range(HEARTBEAT_SLOTS))
        self.signals: deque[int] = deque()
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = EXIT_OK
        self.age = 0
        self.app: Any = None

    # start-up

    def run(self) -> int:
        _set_title(f"wsgid: master [{self.app_label}]")
        try:
            self.worker_class = resolve(self.settings.worker_class)
        except UnknownWorkerClass as exc:
            return self._fail_start(str(exc), EXIT_CONFIG)
        try:
            self.listeners = listeners_mod.bind_all(
                self.settings.bind, self.settings.backlog, on_retry=self._on_bind_retry
            )
        except listeners_mod.ListenerError as exc:
            return self._fail_start(str(exc), EXIT_LISTEN_FAILED)
        try:
            if self.settings.preload_app:
                try:
                    self.app = loader.load_app(self.settings)
                except loader.AppLoadError as exc:
                    return self._fail_start(str(exc), EXIT_APP_LOAD_FAILED)
            self.heartbeat = HeartbeatTable(HEARTBEAT_SLOTS)
            self.boot_r, self.boot_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._init_signals()
            self.log.info(
                "master.started",
                version=_version(),
                listening=",".join(str(lst) for lst in self.listeners),
                workers=self.settings.workers,
                worker_class=self.settings.worker_class,
            )
            self._manage_workers()
            return self._loop()
        finally:
            listeners_mod.close_all(self.listeners)

    def _fail_start(self, message: str, code: int) -> int:
        self.log.error("master.start_failed", error=message, exit_code=code)
        if self.settings.errorlog != "-":
            print(f"wsgid: {message}", file=sys.stderr)
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
            try:
                readable, _, _ = select.select([self.wake_r, self.boot_r], [], [], TICK)
            except InterruptedError:
                readable = []
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
            self._check_timeouts()
            self._manage_workers()
        self.log.info("master.stopped", exit_code=self.exit_code)
        return self.exit_code

    def _handle_signal(self, signum: int) -> None:
        if signum in _STOP_SIGNALS:
            fast = signum == signal.SIGINT or self.stopping
            self._stop(fast, signal.Signals(signum).name)
        elif signum == signal.SIGCHLD:
            pass  # reaped on every turn of the loop
        elif signum == signal.SIGUSR1:
            self.logs.reopen()
            self._signal_workers(signal.SIGUSR1)
        else:
            self.log.info("master.signal_ignored", signal=signal.Signals(signum).name)

    def _stop(self, fast: bool, reason: str) -> None:
        grace = FAST_STOP_GRACE if fast else float(self.settings.graceful_timeout)
        deadline = time.monotonic() + grace
        if self.stopping and not fast:
            return
        self.log.info(
            "master.stopping", signal=reason, graceful=not fast, workers=len(self.workers)
        )
        self.stopping = True
        self.stop_deadline = min(self.stop_deadline, deadline) if self.stop_deadline else deadline
        # Stop accepting at once: the workers close their copies on TERM.
        listeners_mod.close_all(self.listeners)
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

    def _read_boots(self) -> None:
        try:
            data = os.read(self.boot_r, 4096)
        except BlockingIOError:
            return
        for offset in range(0, len(data) - len(data) % BOOTED.size, BOOTED.size):
            (pid,) = BOOTED.unpack_from(data, offset)
            worker = self.workers.get(pid)
            if worker is not None:
                worker.booted = True
                self.log.info("worker.booted", worker=pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # not ours (e.g. a child of an app preloaded here)
            self.free_slots.append(worker.slot)
            self._worker_exited(worker, status)

    def _worker_exited(self, worker: WorkerProcess, status: int) -> None:
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            self.log.warning("worker.exited", worker=worker.pid, signal=sig)
            return
        code = os.WEXITSTATUS(status)
        if code in (EXIT_BOOT_FAILED, EXIT_APP_LOAD_FAILED) and not worker.booted:
            # A worker that cannot boot will not boot next time either.
            self.log.error(
                "master.worker_boot_failed",
                worker=worker.pid,
                exit_code=code,
                reason="app could not be loaded" if code == EXIT_APP_LOAD_FAILED else "boot error",
            )
            if not self.stopping:
                self.exit_code = code
                self._stop(fast=True, reason="worker boot failure")
            return
        log = self.log.info if code == 0 else self.log.warning
        log("worker.exited", worker=worker.pid, exit_code=code)

    def _check_timeouts(self) -> None:
        timeout = float(self.settings.timeout)
        if timeout <= 0:
            return
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if now - self.heartbeat.last(worker.slot) > timeout:
                self.log.error("worker.timeout", worker=worker.pid, timeout=timeout)
                _kill(worker.pid, signal.SIGKILL)

    def _manage_workers(self) -> None:
        while len(self.workers) < int(self.settings.workers):
            self._spawn()

    def _spawn(self) -> None:
        slot = self.free_slots.popleft()
        self.heartbeat.beat(slot)
        self.age += 1
        pid = os.fork()
        if pid:
            self.workers[pid] = WorkerProcess(pid, slot, time.monotonic())
            return
        code = EXIT_ERROR
        try:
            code = self._worker_main(slot)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_ERROR
        except BaseException:
            with contextlib.suppress(BaseException):
                self.log.exception("worker.crashed")
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _worker_main(self, slot: int) -> int:
        """The first code a forked worker runs: drop master state, become a worker."""
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.close(self.boot_r)
        _set_title(f"wsgid: worker [{self.app_label}]")
        worker: Worker = self.worker_class(
            WorkerContext(
                settings=self.settings,
                listeners=self.listeners,
                logs=self.logs,
                heartbeat=self.heartbeat,
                slot=slot,
                boot_fd=self.boot_w,
                app=self.app,
                age=self.age,
            )
        )
        return worker.run()


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


def run(loaded: Any, reload: Callable[[], Any] | None = None) -> int:
    """Serve until stopped; the exit status for `wsgid`."""
    apply_raw_env(loaded.settings.raw_env)
    return Master(loaded, reload).run()
