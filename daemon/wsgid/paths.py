"""Whether wsgid could write where a setting points, found out without writing there.

Owns: the dry-run checks `wsgid check` runs for the files and directories serving would open or
create (the log files, the control socket, the prometheus multiprocess directory). A check
must leave nothing behind, so none of these creates anything: each raises the OSError the
real open, bind or mkdir would raise (same errno, same path), so that the message built from
it is the one serving prints.

The kernel is asked where it can be without a change (an open without O_CREAT of a file that
exists); otherwise the rules it applies are: the parent directory exists and is a directory,
this process may write and search it, and its file system is not read-only. What that cannot
foresee (a full disk, an LSM policy, a quota) serving still reports itself.
"""

from __future__ import annotations

import errno
import os
import stat


def _error(code: int, path: str) -> OSError:
    """The OSError an operation on `path` failing with `code` raises (str() as open's)."""
    return OSError(code, os.strerror(code), path)


def _may_write(path: str) -> bool:
    # The effective ids, as open(2) and bind(2) use them (access(2) uses the real ones).
    if os.access in os.supports_effective_ids:
        return os.access(path, os.W_OK | os.X_OK, effective_ids=True)
    return os.access(path, os.W_OK | os.X_OK)


def creatable(path: str) -> None:
    """Raise the OSError creating an entry at `path` (a file, a socket) would raise, if any.

    An entry already at `path` is not looked at: the callers replace or open it.
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        info = os.stat(parent)
    except OSError as exc:
        raise _error(exc.errno or errno.ENOENT, path) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _error(errno.ENOTDIR, path)
    if os.statvfs(parent).f_flag & os.ST_RDONLY:
        raise _error(errno.EROFS, path)
    if not _may_write(parent):
        raise _error(errno.EACCES, path)


def appendable(path: str) -> None:
    """Raise the OSError opening `path` to append, creating it if absent, would raise.

    A file that exists is opened without O_CREAT and closed at once: that changes nothing in
    it, and the kernel itself says whether it may be written. A FIFO is only asked about
    (opening one for writing waits for a reader); a path that does not exist, about its
    directory (`creatable`).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        creatable(path)
        return
    if stat.S_ISFIFO(info.st_mode):
        if not os.access(path, os.W_OK):
            raise _error(errno.EACCES, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY)
    os.close(fd)


def makedirs_possible(path: str) -> None:
    """Raise the OSError `os.makedirs(path, exist_ok=True)` followed by removing files in it
    would raise: `path` is a directory this process may write, or can be created as one."""
    target = os.path.abspath(path)
    current, first_missing = target, ""
    while True:  # up to the nearest ancestor that exists ("/" does)
        try:
            info = os.stat(current)
        except FileNotFoundError:
            current, first_missing = os.path.dirname(current), current
            continue
        except OSError as exc:
            raise _error(exc.errno or errno.EACCES, path) from None
        break
    if not first_missing:  # it exists: the stale files in it are removed at start
        if not stat.S_ISDIR(info.st_mode):
            raise _error(errno.EEXIST, path)
        if not _may_write(target):
            raise _error(errno.EACCES, path)
        return
    try:
        creatable(first_missing)
    except OSError as exc:
        raise _error(exc.errno or errno.EACCES, path) from None
