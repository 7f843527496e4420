"""`reload`: the one watcher, in the master, that turns a change of the code into a reload.

Owns: what is watched, how, and when a change is ripe.

- What: the application's module files, which each worker reports after it has imported
  the app and again when it has imported more (`ModuleReports`, over a pipe the master reads
  in its loop; never on the request path), the files of an import that failed included,
  plus the `reload_extra_files` globs, expanded again on every check so that a file
  created later is caught. Editor temp files, `__pycache__`, bytecode and log files never
  count (gunicorn#2509: a log file in the project restarted it on every line).
- How: an inotify instance over ctypes (`inotify` engine), watching the directories of those
  files, so that an atomic save (a temp file renamed over the module) and a file created
  later are seen; or `os.stat` of every file and directory once a second (`poll` engine).
  `auto` is inotify where the kernel has it, else poll.
- When: a burst of events (an editor writes, renames, touches) is one change once it has
  been quiet for DEBOUNCE seconds.

What a change does is the master's: the HUP path, which keeps the old workers serving if the
new ones cannot import the app. The watcher lives only in the master, so it is never in a
worker, nor in a process whose modules the app monkey-patched; a worker closes the master's
descriptors right after the fork (`close_in_child`), so there is exactly one inotify instance.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import glob
import os
import select
import struct
import sys
import sysconfig
import time
from collections.abc import Iterable
from typing import Any, Protocol

from wsgid.workers import unpatched

DEBOUNCE = 0.25  # seconds without an event before a burst of them is one change
POLL_INTERVAL = 1.0  # seconds between two stat() scans of the poll engine

# Names that never count, whatever the globs say: editor temp and swap files (vim's `4913`
# probe, `.x.swp`, emacs' `.#x` locks and `x~` backups), bytecode, and log files.
IGNORED_NAMES = (".*.sw?", "*~", ".#*", "4913", "*.py[cod]", "*.log", "*.log.[0-9]*")
IGNORED_DIRS = ("__pycache__",)

# One report frame: its payload's length, then NUL-separated absolute paths. A frame is at
# most PIPE_BUF bytes so that its write is atomic: the reports of workers booting at the
# same moment never interleave.
_FRAME = struct.Struct("=H")
_FRAME_MAX = select.PIPE_BUF


def ignored(path: str) -> bool:
    """True for a path that never triggers a reload (editor temp files, bytecode, logs)."""
    parts = path.split(os.sep)
    if any(part in IGNORED_DIRS for part in parts):
        return True
    return any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in IGNORED_NAMES)


# ------------------------------------------------------------------------- the worker side


class ModuleReports:
    """In a worker: tell the master the module files it has imported, at boot and later.

    The first report follows the app's import (`send_new` from the boot). The worker then
    looks again on each check of its master (once a second): a module the app imports on
    its first request (Django's URLconf and views) is watched from then on. A look costs a
    `len(sys.modules)` when nothing was imported since. A module's file is reported as
    imported and, behind a symlink, as its target too: an edit through either is one of the
    target's directory.

    Left out: the standard library (it changes only with Python itself, which a reload cannot
    pick up) and wsgid's own package (new workers are forked from the master, so they would
    run its old code anyway).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._sent: set[str] = set()
        self._seen = 0  # len(sys.modules) at the last look
        own = os.path.dirname(os.path.abspath(__file__))
        stdlib = {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
        self._skip = tuple(os.path.join(path, "") for path in (*stdlib, own))

    def send_new(self, more: Iterable[str] = ()) -> None:
        """Send the files of the modules imported since the last look, and `more` (the files
        of an import that failed, which `sys.modules` no longer holds)."""
        if self.fd < 0 or (len(sys.modules) == self._seen and not more):
            return
        self._seen = len(sys.modules)
        names = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
        files: set[str] = set()
        for name in (*names, *more):
            if isinstance(name, str):
                path = os.path.abspath(name)
                for found in {path, os.path.realpath(path)}:
                    if not found.startswith(self._skip) and not ignored(found):
                        files.add(found)
        new = files - self._sent
        if not new:
            return
        self._sent |= new
        try:
            for frame in _frames(new):
                _send(self.fd, frame)
        except OSError:
            # EPIPE: a HUP turned reload off meanwhile and the master closed its end. The
            # worker serves all the same, and reports no more.
            os.close(self.fd)
            self.fd = -1


def files_of_failure(exc: BaseException) -> set[str]:
    """The source files an import that failed with `exc` went through: the file a
    SyntaxError names, and those of its traceback. A module that failed to import is no
    longer in `sys.modules`, yet its fix is the change that must reload."""
    error = exc.__context__ or exc  # the loader's AppLoadError stands for the import's error
    files = set()
    filename = getattr(error, "filename", None)
    if isinstance(error, SyntaxError) and isinstance(filename, str):
        files.add(filename)
    tb = error.__traceback__
    while tb is not None:
        files.add(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return {name for name in files if os.path.isfile(name)}


def _frames(files: Iterable[str]) -> list[list[bytes]]:
    """`files` in report frames, each small enough to be written atomically."""
    frames: list[list[bytes]] = [[]]
    size = 0
    for path in sorted(files):
        item = os.fsencode(path)
        if _FRAME.size + len(item) > _FRAME_MAX:
            continue  # longer than any real path; it cannot be sent atomically
        if _FRAME.size + size + len(frames[-1]) + len(item) > _FRAME_MAX:
            frames.append([])
            size = 0
        frames[-1].append(item)
        size += len(item)
    return [frame for frame in frames if frame]


def _send(fd: int, items: list[bytes]) -> None:
    payload = b"\0".join(items)
    unpatched.OS_WRITE(fd, _FRAME.pack(len(payload)) + payload)


# ------------------------------------------------------------------------------ the engines


class Engine(Protocol):
    """How the watched files are observed."""

    name: str

    def fileno(self) -> int | None:
        """The descriptor the master's loop waits on; None: checked every POLL_INTERVAL."""

    def watch(self, files: set[str], dirs: set[str]) -> list[tuple[str, str]]:
        """Observe these files (and, where the engine can, these directories) from now on.

        Returns the directories it could not watch, and why.
        """

    def changed(self) -> set[str]:
        """The paths that changed since the last call (may include paths that do not count)."""

    def close(self) -> None:
        """Release the engine's resources."""


# <sys/inotify.h>
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4  # `touch`, the usual way to ask for a reload
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80  # an atomic save: the temp file renamed over the module
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000  # the watched directory is gone
_IN_ONLYDIR = 0x01000000
_IN_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_ONLYDIR
)  # fmt: skip
_IN_EVENT = struct.Struct("=iIII")  # wd, mask, cookie, len; then len bytes of name
OVERFLOW = "<inotify queue overflow>"  # events were lost: treated as a change


class InotifyUnavailable(Exception):
    """The kernel or libc has no inotify, or no instance is left (max_user_instances)."""


class Inotify:
    """One inotify instance over ctypes, watching directories; non-blocking, polled by the loop."""

    name = "inotify"

    def __init__(self) -> None:
        try:
            libc: Any = ctypes.CDLL(None, use_errno=True)
            self._add = libc.inotify_add_watch
            init = libc.inotify_init1
        except (OSError, AttributeError) as exc:
            raise InotifyUnavailable(f"no inotify in libc: {exc}") from None
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._fd: int = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            code = ctypes.get_errno()
            raise InotifyUnavailable(f"inotify_init1: {os.strerror(code)}")
        self._dirs: dict[int, str] = {}  # watch descriptor -> directory
        self._watched: set[str] = set()
        self._refused: set[str] = set()  # said once; not tried again

    def fileno(self) -> int:
        return self._fd

    def watch(self, files: set[str], dirs: set[str]) -> list[tuple[str, str]]:
        refused: list[tuple[str, str]] = []
        for directory in dirs - self._watched - self._refused:
            wd = self._add(self._fd, os.fsencode(directory), _IN_MASK)
            if wd < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ENOTDIR):
                    continue  # not there (yet): nothing to watch
                self._refused.add(directory)
                why = os.strerror(code)
                if code == errno.ENOSPC:
                    why = "no inotify watch left (sysctl fs.inotify.max_user_watches)"
                refused.append((directory, why))
                continue
            self._dirs[wd] = directory
            self._watched.add(directory)
        return refused

    def changed(self) -> set[str]:
        paths: set[str] = set()
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return paths
            offset = 0
            while offset + _IN_EVENT.size <= len(data):
                wd, mask, _cookie, length = _IN_EVENT.unpack_from(data, offset)
                offset += _IN_EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                if mask & _IN_Q_OVERFLOW:
                    paths.add(OVERFLOW)
                elif mask & _IN_IGNORED:
                    self._watched.discard(self._dirs.pop(wd, ""))
                elif wd in self._dirs and name:
                    paths.add(os.path.join(self._dirs[wd], os.fsdecode(name)))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class Poll:
    """`os.stat` of every watched file and directory once a second: no kernel facility needed.

    A directory whose mtime moved is listed again, so that a file created in it (a new
    module beside the others) is seen as inotify would see it.
    """

    name = "poll"

    def __init__(self) -> None:
        self._stats: dict[str, tuple[int, int, int] | None] = {}
        self._dirs: dict[str, tuple[tuple[int, int, int] | None, frozenset[str]]] = {}

    def fileno(self) -> None:
        return None

    def watch(self, files: set[str], dirs: set[str]) -> list[tuple[str, str]]:
        for path in files - self._stats.keys():
            self._stats[path] = _stat(path)  # the baseline: what the workers imported
        for directory in dirs - self._dirs.keys():
            self._dirs[directory] = (_stat(directory), _names(directory))
        return []

    def changed(self) -> set[str]:
        paths = set()
        for path, before in self._stats.items():
            now = _stat(path)
            if now != before:
                self._stats[path] = now
                paths.add(path)
        for directory, (before, names) in self._dirs.items():
            now = _stat(directory)
            if now != before:
                listed = _names(directory)
                self._dirs[directory] = (now, listed)
                paths.update(os.path.join(directory, name) for name in listed ^ names)
        return paths

    def close(self) -> None:
        self._stats.clear()
        self._dirs.clear()


def _names(directory: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def _stat(path: str) -> tuple[int, int, int] | None:
    """What tells a changed file: its inode (an atomic save makes a new one), mtime and size."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def make_engine(name: str) -> tuple[Engine, str | None]:
    """The engine `reload_engine` names, and why another one was used instead, if it was."""
    if name == "poll":
        return Poll(), None
    try:
        return Inotify(), None
    except InotifyUnavailable as exc:
        return Poll(), str(exc)


# ------------------------------------------------------------------------------ the watcher


class Reloader:
    """The master's watcher: module reports in, debounced changes out.

    `extra` are the reload_extra_files globs; relative ones are taken from `base`, the
    directory the master started in (gunicorn's rule), not `chdir`.
    """

    def __init__(self, engine: Engine, extra: Iterable[str], base: str, log: Any) -> None:
        self.engine = engine
        self.log = log  # the master's error log
        self.modules: set[str] = set()
        self._module_dirs: set[str] = set()
        self._globs: tuple[str, ...] = ()
        self._matched: set[str] = set()
        self.report_r, self.report_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.report_r, False)  # the master's end; workers write blocking
        self._buffer = b""
        self._pending: set[str] = set()
        self._last_change = 0.0
        self._next_poll = time.monotonic() + POLL_INTERVAL
        self.set_globs(extra, base)

    def set_globs(self, extra: Iterable[str], base: str) -> None:
        """Watch these reload_extra_files globs from now on (a reload may change them)."""
        globs = tuple(os.path.join(base, os.path.expanduser(g)) for g in extra)
        if globs == self._globs:
            return  # unchanged: a file created meanwhile is still found new by the next check
        self._globs = globs
        self._matched = self._expand()
        self._update()

    def fds(self) -> list[int]:
        fd = self.engine.fileno()
        return [self.report_r] if fd is None else [self.report_r, fd]

    def wait(self, now: float, may_fire: bool) -> float:
        """Seconds until the watcher has something to do (a poll scan, a ripe change)."""
        due = self._next_poll if self.engine.fileno() is None else now + POLL_INTERVAL
        if self._pending and may_fire:
            due = min(due, self._last_change + DEBOUNCE)
        return max(0.0, due - now)

    def handle(self, readable: list[int], now: float) -> None:
        """Read what is ready: module reports, engine events, a due poll scan."""
        if self.report_r in readable:
            self._read_reports()
        fd = self.engine.fileno()
        if fd is None and now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL
            self._check(now)
        elif fd is not None and fd in readable:
            self._check(now)

    def ripe(self, now: float) -> list[str]:
        """The changed paths once they have been quiet for DEBOUNCE seconds (then forgotten)."""
        if not self._pending or now - self._last_change < DEBOUNCE:
            return []
        paths, self._pending = sorted(self._pending), set()
        return paths

    def close_in_child(self) -> None:
        """In a forked worker: drop the master's descriptors (the inotify instance included)."""
        fd = self.engine.fileno()
        for own in (self.report_r,) if fd is None else (self.report_r, fd):
            os.close(own)

    def close(self) -> None:
        self.engine.close()
        for fd in (self.report_r, self.report_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # inside

    def _read_reports(self) -> None:
        chunks = [self._buffer]
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.report_r, 65536):
                chunks.append(chunk)
        data = b"".join(chunks)
        added: set[str] = set()
        offset = 0
        while offset + _FRAME.size <= len(data):
            (length,) = _FRAME.unpack_from(data, offset)
            end = offset + _FRAME.size + length
            if end > len(data):
                break
            payload = data[offset + _FRAME.size : end]
            added.update(os.fsdecode(item) for item in payload.split(b"\0") if item)
            offset = end
        self._buffer = data[offset:]
        if added - self.modules:
            self.modules |= added
            self._module_dirs = {os.path.dirname(path) for path in self.modules}
        if added:
            # Also for files known already: a new generation's report after a directory was
            # deleted and made again (a branch switch) watches it again, as its old watch
            # ended with it (IN_IGNORED).
            self._update()

    def _check(self, now: float) -> None:
        paths = self.engine.changed()
        # Watch new directories (under a ** glob) before expanding the globs again: a file
        # created in one meanwhile is then either found now or reported by the engine later.
        self._update()
        matched = self._expand()
        known = matched | self._matched  # a deleted extra file counts too
        created, self._matched = matched - self._matched, matched
        hits = {path for path in paths if self._counts(path, known)} | created
        self._update()
        if hits:
            self._pending |= hits
            self._last_change = now

    def _counts(self, path: str, matched: set[str]) -> bool:
        """A changed path reloads if it is a module, a new module beside them, or an extra file."""
        if path == OVERFLOW:
            return True
        if ignored(path):
            return False
        if path in self.modules or path in matched:
            return True
        # A module created beside the others: the fix for a ModuleNotFoundError, say.
        return path.endswith(".py") and os.path.dirname(path) in self._module_dirs

    def _expand(self) -> set[str]:
        found: set[str] = set()
        for pattern in self._globs:
            found.update(
                path for path in glob.glob(pattern, recursive=True)
                if os.path.isfile(path) and not ignored(path)
            )  # fmt: skip
        return found

    def _update(self) -> None:
        files = self.modules | self._matched
        dirs = self._module_dirs | {os.path.dirname(path) for path in self._matched}
        for pattern in self._globs:
            base = _glob_base(pattern)
            dirs.add(base)
            if "**" in pattern:  # any directory below may get a match later
                dirs.update(
                    top for top, subdirs, _ in os.walk(base)
                    if not any(part in IGNORED_DIRS for part in top.split(os.sep))
                )  # fmt: skip
        for directory, why in self.engine.watch(files, dirs):
            self.log.warning("reload.watch_failed", directory=directory, error=why)


def _glob_base(pattern: str) -> str:
    """The deepest directory of a glob with no wildcard in it: where new matches appear."""
    parts = pattern.split(os.sep)
    for index, part in enumerate(parts):
        if any(char in part for char in "*?["):
            return os.sep.join(parts[:index]) or os.sep
    return os.path.dirname(pattern)
