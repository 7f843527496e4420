"""What every worker kind shares: boot, signals, heartbeat, graceful stop.

Owns: the life of a worker process between the master's fork and its exit:
resetting the signal handlers inherited from the master, installing the
`spew` tracer when asked, loading the app (unless the master preloaded it),
telling the master it has booted, and the exit codes the master reads. A
kind subclasses `Worker` and implements `serve()`.

Worker signals: TERM = graceful (finish in-flight requests, then exit),
INT and QUIT = fast (exit now), USR1 = reopen log files, ABRT = the master
saw no heartbeat for `timeout` seconds: log every thread's stack and the
request being served as one event, then exit. Either exit hands the master
the counts of the requests answered until then first (`publish_counts`).

A worker never outlives its master. The kernel sends it TERM when the master
exits (PR_SET_PDEATHSIG), and the loop checks once a second that the master
is still its parent (`check_master`), which also covers the moment before the
death signal was armed. An orphaned worker stops gracefully, and kills itself
if its requests outlast `graceful_timeout` (nobody else will). A copy of the
worker that the app forked and that came back into wsgid's loop exits at once.
Any process the app forks (os.fork, multiprocessing) gets the same death
signal, tied to its worker, with TERM's default action: a copy stuck in
wsgid's code elsewhere (a gthread pool thread waiting for work that never
comes) ends with its worker instead of holding the port forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import struct
import sys
import threading
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple

from mypy_extensions import mypyc_attr

from wsgid import loader, scoreboard, spew
from wsgid.exitcodes import ExitCode
from wsgid.hooks import Hooks
from wsgid.http.errors import ServerExit
from wsgid.http.request import Request
from wsgid.http.response import worker_stops
from wsgid.listeners import Listener
from wsgid.logs import Logs
from wsgid.runtime import RuntimeSettings
from wsgid.scoreboard import Scoreboard
from wsgid.workers import unpatched

if TYPE_CHECKING:
    from ssl import SSLContext

    from wsgid.reloader import ModuleReports

_PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def _find_prctl() -> Any:
    """libc's prctl(2), or None. Looked up once, in the master: a process the app forks
    calls it at once, and a dlopen() there could deadlock on a lock another thread of the
    app held at the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL: Final = _find_prctl()

BOOTED: Final = struct.Struct("=i")

# Every signal the master handles or sends to a worker. The master blocks
# them across fork; the worker unblocks them once its own handlers are set.
WORKER_SIGNALS: Final = frozenset({
    signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGABRT,
    signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGWINCH,
    signal.SIGCHLD,
})  # fmt: skip


class WorkerContext(NamedTuple):
    """Everything the master hands a new worker."""

    settings: RuntimeSettings
    listeners: list[Listener]
    logs: Logs
    scoreboard: Scoreboard
    slot: int
    boot_fd: int  # write end of the master's boot pipe
    app: Any  # the preloaded app, or None to load it in the worker
    age: int  # spawn counter, for logs
    hooks: Hooks
    master_pid: int  # the parent it serves under; another parent means the master is gone
    modules_fd: int = -1  # `reload`: where to report the app's module files once booted
    tls: SSLContext | None = None  # what the HTTPS listeners serve with (tls.py); None: none


# A custom `worker_class` may subclass any worker class, also in the compiled build.
@mypyc_attr(allow_interpreted_subclasses=True)
class Worker:
    """A worker process; subclasses implement `serve()`."""

    kind: ClassVar[str] = "base"

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        # Made in the new worker, before the post_fork hook: what the hook prints is this
        # worker's output too (capture_output), and its log events count in its slot.
        ctx.logs.enter_worker()
        ctx.scoreboard.mine = ctx.slot
        self.settings = ctx.settings
        self.log = ctx.logs.error.bind(pid=os.getpid())
        self.app: Any = ctx.app
        self.hooks = ctx.hooks
        self.alive = True  # False once a graceful stop began
        self.pid = os.getpid()  # another pid in the loop: a copy the app forked
        self.orphaned = False  # the master is gone (logged)
        self.forking = False  # the process forking now is this worker, not one of its children
        self.serving = False  # the boot (the app's import, hooks) is over: serve() runs
        self.reopen_requested = False
        # (request, peer, started) of the request the app is serving, for
        # the timeout dump; set and cleared by the kind around each app call.
        self.current: tuple[Request, str, float] | None = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # `reload`: the app's module files, told to the master's watcher (None: not reloading).
        self.module_reports: ModuleReports | None = None

    # gunicorn's names, for hooks written for its workers (`worker.cfg.timeout`): the settings
    # have gunicorn's attribute names.
    @property
    def cfg(self) -> RuntimeSettings:
        return self.settings

    @property
    def age(self) -> int:
        return self.ctx.age

    @property
    def ppid(self) -> int:
        return self.ctx.master_pid

    def run(self) -> int:
        """Boot, serve until told to stop, and return the process exit code."""
        if self.settings.spew:
            # Here, after the fork: a tracer in the master would trace the master too.
            spew.install(self.log, self.settings.loglevel)
        # Armed after the switch to `user` (a change of identity disarms it) and before the
        # signals are unblocked, so a TERM it sends meanwhile waits for the handler.
        _set_parent_death_signal(signal.SIGTERM)
        self._init_signals()
        os.register_at_fork(before=self._before_fork, after_in_child=self._after_fork_in_child)
        self.check_master()  # it may have died before the signal was armed
        if not self.alive:
            return ExitCode.OK
        try:
            if self.app is None:
                self.app = loader.load_app(self.settings)
            self.check_app(self.settings)
        except loader.AppLoadError as exc:
            if not self.alive:
                return ExitCode.OK  # stopped while importing (INT exits by SystemExit)
            self.log.error("worker.app_load_failed", error=str(exc))
            if self.ctx.modules_fd >= 0:
                # The files the failed import went through (a module that failed is no longer
                # in sys.modules): the fix of the one that broke is the change that reloads.
                from wsgid.reloader import ModuleReports, files_of_failure

                ModuleReports(self.ctx.modules_fd).send_new(files_of_failure(exc))
            return ExitCode.APP_LOAD_FAILED
        except Exception:
            self.log.exception("worker.boot_failed")
            return ExitCode.BOOT_FAILED
        try:
            self.setup()
        except Exception:
            self.log.exception("worker.boot_failed")
            return ExitCode.BOOT_FAILED
        self.hooks.call("post_worker_init", self)
        if self.ctx.modules_fd >= 0:  # before the boot report: the master watches them first
            from wsgid.reloader import ModuleReports

            self.module_reports = ModuleReports(self.ctx.modules_fd)
            self.module_reports.send_new()
        self.ctx.scoreboard.beat(self.ctx.slot)
        self.ctx.scoreboard.set_state(self.ctx.slot, scoreboard.READY)
        try:
            unpatched.OS_WRITE(self.ctx.boot_fd, BOOTED.pack(os.getpid()))
        except BrokenPipeError:
            # Only the master reads this pipe: it died while the app loaded. Its exit closes
            # the pipe before the kernel reparents this process, so the parent may still
            # look like the master here.
            self._stop_orphaned()
            return ExitCode.OK
        finally:
            os.close(self.ctx.boot_fd)
        self.serving = True
        try:
            self.serve()
        finally:
            # Also on a fast (INT/QUIT) exit: the buffered access records, and the counts of
            # the requests answered since the last publication.
            self.publish_counts()
            self.ctx.logs.flush()
        self.check_master()  # an idle worker leaves its loop before the sweep would log it
        return ExitCode.OK

    def check_master(self) -> None:
        """Stop if this process is no longer the master's worker (the loop calls it each second).

        An orphan (its parent is no longer the master, which was killed or crashed) stops
        gracefully: nobody supervises it, and it holds the port a restart needs. A copy of
        the worker that the app forked and that came back into wsgid's code leaves at once:
        it shares the worker's epoll instance, so even a graceful stop would take the
        listeners off the worker's own.
        """
        if os.getpid() != self.pid:
            os._exit(ExitCode.OK)
        if self.module_reports is not None:
            self.module_reports.send_new()  # a module the app imported since (on a request)
        if not self.orphaned and os.getppid() != self.ctx.master_pid:
            self._stop_orphaned()

    def _stop_orphaned(self) -> None:
        self.orphaned = True
        self.alive = False
        self._bound_orphan_stop()
        self.log.error(
            "worker.master_gone", master=self.ctx.master_pid, action="stopping gracefully"
        )

    def _before_fork(self) -> None:
        self.forking = os.getpid() == self.pid

    def _after_fork_in_child(self) -> None:
        """In a process the app forked: end with the worker, on TERM as any process would.

        wsgid's TERM handler would only mark a worker that is not running here, and its
        wake-up fd is the worker's pipe. A program the child executes keeps the death
        signal (subprocess without `preexec_fn` runs no fork hooks, so it is not affected).
        Only the worker's own children: a grandchild (a daemon's second fork) is left alone.
        """
        if not self.forking:
            return
        with contextlib.suppress(ValueError):  # only the main thread may; it is, after fork
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != self.pid:  # the worker was gone before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    def _bound_orphan_stop(self) -> None:
        """With the master gone nobody kills a stop that outlasts graceful_timeout: do it here.

        SIGALRM's default action ends the process even while the app is stuck in C code.
        """
        signal.alarm(math.ceil(self.settings.graceful_timeout) + 1)

    @classmethod
    def prepare_process(cls) -> None:
        """The first thing a forked worker of this kind runs (optional).

        Before the rest of the worker's start, the app's import included: where a
        cooperative kind monkey-patches the standard library (greenlets.py).
        """

    @classmethod
    def check_app(cls, settings: RuntimeSettings) -> None:
        """Raise `loader.AppLoadError` if this kind cannot serve the app just loaded (optional).

        Called after the app is loaded (or preloaded), so it sees what the app's import did
        to the process; a class method, so that a check without a worker can call it too.
        """

    def setup(self) -> None:
        """Kind-specific preparation after the app is loaded (optional)."""

    def serve(self) -> None:
        raise NotImplementedError

    def publish_counts(self) -> None:
        """Hand the requests counted and not yet on the scoreboard to it (before an exit)."""

    def _init_signals(self) -> None:
        # Handlers and the wakeup fd were inherited from the master: replace them.
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGABRT, self._on_abort)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        # Let a blocking system call in the app return EINTR on TERM only if it
        # wants to; everything else restarts as usual.
        signal.siginterrupt(signal.SIGTERM, False)
        # The master forked us with these blocked; one sent meanwhile is
        # delivered now, to the handlers above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.alive = False
        # Now, not at the loop's next turn: a sync worker is in the app, whose response is
        # still to say `Connection: close`.
        worker_stops()
        if os.getppid() != self.ctx.master_pid:
            # The death signal: the loop may not sweep again before the stop (a sync
            # worker stuck in the app), so the stop is bounded from here.
            self._bound_orphan_stop()

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        self.alive = False
        worker_stops()
        self.hooks.call("worker_int", self)
        if not self.serving:
            # Still booting: the exception below could land in a weakref callback (importlib
            # frees its module locks in one), where Python only prints it and the import goes
            # on. Nothing of the worker needs unwinding yet.
            self.ctx.logs.flush()
            os._exit(ExitCode.OK)
        raise ServerExit(ExitCode.OK)  # not the app's sys.exit(), which is only a 500

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        """The master's timeout: say where every thread is stuck, then exit."""
        # First, so that the requests answered before the stuck one are counted even if the
        # dump outlasts the master's grace: the loop publishes before it idles, but a request
        # that came at once after them (no idle between) reached the app first. (Not while
        # booting: nothing was counted, and the kind's counts are not made yet.)
        if self.serving:
            self.publish_counts()
        stacks = []
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, thread_frame in sys._current_frames().items():
            stack = "".join(traceback.format_stack(thread_frame))
            stacks.append(f"Thread {names.get(ident, ident)}:\n{stack}")
        request: dict[str, object] = {}
        if self.current is not None:
            req, peer, started = self.current
            request = {
                "method": req.method,
                "path": req.path.decode("latin-1"),
                "peer": peer,
                "elapsed": round(time.monotonic() - started, 3),
            }
        self.log.error(
            "worker.timeout_dump",
            timeout=self.settings.timeout,
            **request,
            stacks="\n".join(stacks),
        )
        self.hooks.call("worker_abort", self)
        self.ctx.logs.flush()
        os._exit(ExitCode.WORKER_ABORTED)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.reopen_requested = True


def _set_parent_death_signal(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent exits (Linux).

    Where prctl is missing or refuses, a worker's loop still notices an orphaned worker
    within a second (`Worker.check_master`).
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
