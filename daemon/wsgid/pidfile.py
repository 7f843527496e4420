"""The master's pidfile.

Owns: writing the pid atomically (temporary file + rename, mode 0644),
holding an advisory lock on it for the master's life, detecting a live
instance, refusing symlinks, renaming on a binary upgrade (`NAME.pid.2` ->
`NAME.pid`), removing it on a clean exit, and closing the copy of its
descriptor a forked worker inherits.

The lock, not the pid in the file, decides whether an instance is running:
a file left by a crash (even one whose pid was since reused by an unrelated
process) is not locked, so it never blocks a start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat


class PidfileError(Exception):
    """The pidfile cannot be created; str() says why, naming the path."""


class Pidfile:
    """A pidfile held (locked) by this process."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd: int | None = None

    def create(self, pid: int) -> None:
        """Write `pid` to the file and hold its lock; PidfileError if another instance runs."""
        _refuse_symlink(self.path)
        running = _locked_pid(self.path)
        if running is not None:
            raise PidfileError(
                f"pidfile {self.path}: wsgid is already running with pid {running}"
                " (stop it first, or use another --pid path)"
            )
        directory = os.path.dirname(self.path)
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{pid}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise PidfileError(f"pidfile {self.path}: cannot create it: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, 0o644)  # whatever the umask says
            os.write(fd, f"{pid}\n".encode())
            os.fsync(fd)
            os.rename(tmp, self.path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise PidfileError(f"pidfile {self.path}: cannot write it: {exc.strerror}") from None
        self._fd = fd

    def close_copy(self) -> None:
        """In a forked child: close its copy of the descriptor; the lock stays the master's.

        A worker inherits the open, writable descriptor across fork, and the app it runs
        (under `user`, perhaps) could write through it to the root-owned file. The flock
        belongs to the open file, which the master's descriptor keeps open: closing a copy
        does not release it.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rename(self, new_path: str) -> None:
        """Move the held pidfile to `new_path` (the lock moves with it)."""
        new_path = os.path.abspath(new_path)
        _refuse_symlink(new_path)
        os.rename(self.path, new_path)
        self.path = new_path

    def remove(self) -> None:
        """Unlink the file if it is still ours, and release the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def _refuse_symlink(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PidfileError(f"pidfile {path}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise PidfileError(f"pidfile {path} is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(mode):
        raise PidfileError(f"pidfile {path} exists and is not a regular file")


def _locked_pid(path: str) -> int | None:
    """The pid in `path` if a live process holds its lock, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidfileError(f"pidfile {path}: cannot read it: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        return None  # not locked: stale, whatever pid it names
    finally:
        os.close(fd)
