"""The `wsgid` command: turns argv into an action and an exit status.

What this module owns:

- `main`, the entry point of the `wsgid` console script and of `python -m wsgid`: it loads the
  settings, then serves (`wsgid.master.run`), checks (`wsgid check`), shows the effective
  configuration (`wsgid config show`), prints the JSON Schema of the file
  (`wsgid config schema`) or a gunicorn Python config as TOML (`wsgid config import`), or
  reads the workers' state from a running master (`wsgid status`).
- `load`, which reads the settings in a short-lived child process (below).
- `serve_app`, which serves an application built elsewhere (`pserve`, through
  `wsgid.paste.serve`) the way `main` serves one it loads.

How the settings are shown (`config show`, `config schema`) is `wsgid.settings.render`'s.

Rules it keeps:

- Every bad configuration ends here as one paragraph on stderr and exit status 2; a user never
  sees a traceback for a mistake in their configuration.
- The master and the loader are imported only when a command needs them, so `wsgid --help`,
  `wsgid config ...` and a configuration error stay fast and work even when the server side
  cannot be imported.
- The settings are read in a short-lived child process (`load`), so the process that goes on
  to serve never imports pydantic: see `wsgid.runtime`. This module imports `wsgid.settings`
  only in that child and for the commands that print the settings.
"""

from __future__ import annotations

import contextlib

# Before the settings child is forked, so that it and the master share it: pydantic-core
# imports it in the child, and the master's logs need it. Imported once, not in each.
import datetime  # noqa: F401
import io
import marshal
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from wsgid import early_signals
from wsgid.exitcodes import ExitCode
from wsgid.runtime import Command, ConfigError, LoadedSettings, RuntimeSettings

if TYPE_CHECKING:
    from wsgid.loader import WSGIApp
    from wsgid.paste import ServerSection


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `wsgid` command with `argv` (without the program name); return the exit status."""
    early_signals.hold()
    _fill_standard_fds()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        loaded = load(args)
    except ConfigError as exc:
        return _config_error(exc)
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    for warning in loaded.warnings:
        _print_error(warning, "warning")

    if loaded.command == "config-schema":
        from wsgid.settings import schema_text

        sys.stdout.write(schema_text())
        return ExitCode.OK
    if loaded.command == "config-show":
        from wsgid.settings import show_json, show_table

        sys.stdout.write(show_json(loaded) if loaded.json_output else show_table(loaded))
        return ExitCode.OK
    if loaded.command == "config-import":
        from wsgid.settings import import_python_config

        assert loaded.settings.config is not None
        try:
            text = import_python_config(loaded.settings.config, "the command line")
        except ConfigError as exc:
            return _config_error(exc)
        sys.stdout.write(text)
        return ExitCode.OK
    if loaded.command == "check":
        return _check(loaded)
    if loaded.command == "status":
        return _status(loaded)
    # On HUP the master re-reads the configuration from the same argv and the environment of
    # that moment, through the same code path as at startup.
    return _serve(loaded, lambda: load(args))


def serve_app(app: WSGIApp, server: ServerSection) -> int:
    """Serve an application the caller built, with the settings of a paste server section.

    `wsgid.paste.serve` (pserve) comes here: the settings are read as for the command line,
    with the section's keys as one more source, and the master serves `app` as if preloaded.
    Returns the exit status, as `main` does.
    """
    early_signals.hold()
    _fill_standard_fds()
    try:
        loaded = load([], server)
    except ConfigError as exc:
        return _config_error(exc)
    return _serve(loaded, lambda: load([], server), app)


# The standard streams by descriptor: their `sys` names and the mode Python opens them in.
_STANDARD_STREAMS = ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w"))


def _fill_standard_fds() -> None:
    """Open /dev/null on each of descriptors 0, 1 and 2 that is closed, with a Python stream.

    A process started with one closed (`wsgid ... >&- 2>&-`, a supervisor that closes them)
    would give its number to the next descriptor wsgid opens: a pipe of the master's, a
    client's socket in a worker. Whatever writes to "stderr" by number (a C library's warning,
    an app's `os.write(2, ...)`, a fatal error's dump) would then go into that pipe or into a
    client's response. Python leaves `sys.stderr` None for a closed descriptor, so the app's
    `sys.stderr.write` would fail; it gets a stream over /dev/null, as if started with
    `2>/dev/null`.
    """
    for fd, name, mode in _STANDARD_STREAMS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        # The lowest free number, which is `fd`: those below it are open by now. Inheritable,
        # as a standard descriptor is: the app's subprocesses get it too.
        try:
            os.set_inheritable(os.open(os.devnull, os.O_RDWR), True)
        except OSError:
            return  # no /dev/null (a bare chroot): nothing to put there
        if getattr(sys, name) is None:
            stream = open(fd, mode, closefd=False, errors="backslashreplace")  # noqa: SIM115
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def _config_error(exc: ConfigError) -> int:
    _print_error(str(exc))
    return ExitCode.CONFIG


def _print_error(message: str, kind: str = "error") -> None:
    """`wsgid: error: MESSAGE` (or `warning`) on stderr, control characters escaped in
    each of its lines.

    Messages quote values from the environment and files; an ESC or BEL in
    one must not reach the terminal (the logs escape the same way). Into systemd's journal
    the line begins with its priority, as the logs' records do (`logs.sinks.JournalSink`).
    """
    from wsgid.logs.escape import printable
    from wsgid.logs.sinks import is_journal

    priority = ("<3>" if kind == "error" else "<4>") if is_journal(2, os.environ) else ""
    # A message of several lines (an app's import traceback) keeps them, each escaped.
    first, *rest = message.split("\n")
    lines = [f"{priority}wsgid: {kind}: {printable(first)}"]
    lines += [f"{priority}{printable(line)}" for line in rest]
    print("\n".join(lines), file=sys.stderr)


def _serve(
    loaded: LoadedSettings, reload: Callable[[], LoadedSettings], app: WSGIApp | None = None
) -> int:
    from wsgid.master import run

    try:
        return run(loaded, reload=reload, app=app)
    except ConfigError as exc:  # e.g. a log file that cannot be opened
        return _config_error(exc)


# --------------------------------------------------------------------------------------------
# Reading the settings in a child process
# --------------------------------------------------------------------------------------------


def load(args: list[str], server: ServerSection | None = None) -> LoadedSettings:
    """`wsgid.settings.load_settings(args, os.environ, server)`, in a child process when it
    can be.

    Why a child: pydantic and the model are needed only to read the configuration, yet
    importing them would stay in the serving master and, by fork, in every worker (about
    11 MiB of a server's memory). A forked child reads and validates the settings and
    sends back their values, or the message of its `ConfigError`; this process builds the
    `RuntimeSettings` of them and never imports pydantic. A HUP reload comes here too.

    Whatever the child cannot send back (`--help` and `--version`, which print; an unexpected
    error; no fork possible; no answer within CHILD_TIMEOUT) is done again here, in-process,
    where it behaves as it always did, and returns the same `RuntimeSettings`.
    """
    answer = _load_in_child(args, server)
    if answer is None:
        from wsgid.settings import load_settings

        return load_settings(args, os.environ, server)
    if isinstance(answer, str):
        raise ConfigError(answer)
    values, sources, command, json_output, show_secrets, warnings, environ, path = answer
    _carry_over(environ, path)
    return LoadedSettings(
        RuntimeSettings(**values), sources, command, json_output, show_secrets, warnings
    )


# What the child sends: (values, sources, command, json_output, show_secrets, warnings, the
# environment variables it set (None: removed), the directories it put on sys.path), or a
# ConfigError's message.
_Answer = (
    tuple[
        dict[str, Any],
        dict[str, str],
        Command,
        bool,
        bool,
        tuple[str, ...],
        dict[str, str | None],
        tuple[str, ...],
    ]
    | str
)


def _carry_over(environ: Mapping[str, str | None], path: Sequence[str]) -> None:
    """Do here what reading the settings did to the child's process: a gunicorn Python config
    is run as gunicorn runs it, in the process that serves, and what it sets in os.environ
    (`os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)`) or puts on sys.path
    (`sys.path.insert(0, "/app")`) holds for the app."""
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for directory in reversed(path):
        if directory not in sys.path:
            sys.path.insert(0, directory)


# Reading the settings takes a tenth of a second. A child forked on HUP from a master where
# another thread (of a preloaded app) held a lock, an import lock say, can wait on it forever:
# it is killed after this long and the settings are read in-process instead.
CHILD_TIMEOUT = 10.0


def _load_in_child(args: list[str], server: ServerSection | None) -> _Answer | None:
    """What `_read_settings` sent from a forked child, or None when it sent nothing."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:
        os.close(read_fd)
        _read_settings(write_fd, args, server)
    os.close(write_fd)
    if len(os.sched_getaffinity(0)) > 1:
        _import_serving_modules()
    try:
        data = _receive(read_fd, pid)
    finally:
        os.close(read_fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # SIGCHLD ignored: the kernel reaped it, its status is lost
        status = 0
    if status != 0 or not data:  # killed, perhaps halfway through its answer
        return None
    answer: _Answer = marshal.loads(data)
    return answer


def _import_serving_modules() -> None:
    """Import what serving needs while the child reads the settings.

    With a second CPU the two overlap, which takes the master's own imports (about a third of
    a start: the logs, structlog, the worker table) off the time to the first answer: measured
    315 → 263 ms (median of 8 starts, 2 CPUs). On a single CPU the two only contend (306 →
    351 ms), so the caller does this only when more than one CPU is ours. The child was forked
    first, so it never holds these modules. Other commands pay the imports in CPU, not in
    time; on HUP they are imported already. A failure is left for the place that needs the
    module to report.
    """
    with contextlib.suppress(ImportError):
        import wsgid.master  # noqa: F401


def _receive(fd: int, pid: int) -> bytes:
    """All the child writes to `fd`, or nothing if it is still busy after CHILD_TIMEOUT."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    # poll(2), not select(2): on HUP, in a master whose preloaded app holds a thousand files,
    # the pipe is numbered past select's FD_SETSIZE (1024), and select would refuse it.
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not waiter.poll(remaining * 1000):
            os.kill(pid, signal.SIGKILL)
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_settings(pipe_fd: int, args: list[str], server: ServerSection | None) -> NoReturn:
    """The child of `_load_in_child`: load the settings, send the outcome, exit at once.

    It sends (values, sources, command, json_output, show_secrets, warnings, and what a Python
    config changed of os.environ and sys.path: `_carry_over`), or a `ConfigError`'s message,
    marshalled: the values are plain str, int, float, bool, None, tuples and dicts (what
    pydantic-core's validation returns), which marshal, built into the interpreter, writes
    without the import that pickle costs every start (about 3 ms on one CPU). Anything else
    makes `marshal.dumps` raise, and the child send nothing.
    On anything else it sends nothing. Its stdout goes nowhere (what `--help` and `--version`
    print is printed by the in-process retry), and it leaves by `os._exit`, so no buffer or
    exit handler inherited from the parent runs twice.
    """
    status = 1
    try:
        sys.stdout = io.StringIO()
        # Named in `ps`: on a HUP it would otherwise pass for a second master. At start the
        # parent still has its plain command line, and importing setproctitle here (with the
        # `logging` it imports) would cost every start about 5 ms on one CPU.
        setproctitle = sys.modules.get("setproctitle")
        if setproctitle is not None:
            setproctitle.setproctitle("wsgid: reading configuration")
        # pydantic plugins (installed for the app's models) have no business with wsgid's
        # own, and looking them up reads the metadata of every installed distribution.
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
        from wsgid.settings import SPECS, load_settings

        answer: _Answer
        environ, path = dict(os.environ), list(sys.path)
        try:
            loaded = load_settings(args, os.environ, server)
        except ConfigError as exc:
            answer = str(exc)
        else:
            values = {name: getattr(loaded.settings, name) for name in SPECS}
            # What a Python config did to the process, for the parent to do too.
            changed: dict[str, str | None] = {
                name: value for name, value in os.environ.items() if environ.get(name) != value
            }
            changed.update({name: None for name in environ if name not in os.environ})
            added = tuple(directory for directory in sys.path if directory not in path)
            answer = (
                values,
                dict(loaded.sources),
                loaded.command,
                loaded.json_output,
                loaded.show_secrets,
                loaded.warnings,
                changed,
                added,
            )
        with open(pipe_fd, "wb") as pipe:
            pipe.write(marshal.dumps(answer))
        status = 0
    finally:
        os._exit(status)


def _status(loaded: LoadedSettings) -> int:
    """`wsgid status`: what the master of these settings says through its control socket."""
    import json

    from wsgid import control

    settings = loaded.settings
    path = control.socket_path(settings.control_socket, settings.control_socket_disable, os.environ)
    if path is None:
        _print_error(
            "no control socket: set control_socket to an absolute path (or run under systemd"
            " with RuntimeDirectory=, where it is on by default), as the server has it"
        )
        return ExitCode.CONFIG
    try:
        document = control.fetch(path)
    except control.StatusError as exc:
        _print_error(str(exc))
        return ExitCode.ERROR
    sys.stdout.write(
        json.dumps(document, indent=2) + "\n" if loaded.json_output else control.render(document)
    )
    return ExitCode.OK


def _check(loaded: LoadedSettings) -> int:
    """`wsgid check`: what a start would refuse, by the master's own steps
    (`wsgid.master.check_start`), then the application, imported as a worker imports it."""
    from wsgid.loader import AppLoadError, load_app
    from wsgid.master import CONFIG_ERRORS, become_the_workers_user, check_start
    from wsgid.privileges import PrivilegeError

    try:
        check_start(loaded)
    except CONFIG_ERRORS as exc:
        _print_error(str(exc))
        return ExitCode.CONFIG
    if not loaded.settings.preload_app:  # (preloaded, the master imports it, as itself)
        try:
            # A worker imports the app as `user`: files only root may read fail there.
            become_the_workers_user(loaded.settings, loaded.sources)
        except (PrivilegeError, OSError) as exc:
            _print_error(f"the workers cannot become their user: {exc}")
            return ExitCode.BOOT_FAILED
    try:
        load_app(loaded.settings)
    except AppLoadError as exc:
        _print_error(str(exc))
        return ExitCode.APP_LOAD_FAILED
    settings = loaded.settings
    print(f"wsgid: configuration OK; application {settings.app or settings.paste} loaded.")
    return ExitCode.OK
