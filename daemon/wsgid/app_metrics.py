"""The application's own `prometheus_client` metrics across workers, with no work by the user.

Owns: `PROMETHEUS_MULTIPROC_DIR` when wsgid manages it (`prometheus_multiproc_dir`), and
what `prometheus_client`'s multiprocess mode needs from a pre-fork server:

- the directory exists, is empty at start (a previous run's files would be counted again),
  belongs to the workers' user, and is in the environment before the application is
  imported, so that `prometheus_client` picks its multiprocess mode at import;
- each worker writes files named after its scoreboard slot, not its pid: a worker recycled by
  max_requests leaves its slot to its successor, which continues the same files. The number
  of files stays bounded by the slots in use instead of growing with every recycled worker,
  and counters keep counting across recycling (`prometheus_client` reads a file's values back
  when it opens it). This is `prometheus_client.values.MultiProcessValue` with another
  process identifier, installed the moment the application imports `prometheus_client`
  (an import hook), so an app that never imports it pays nothing;
- `mark_process_dead` for every reaped worker, whatever killed it, before its slot is given
  to the next one, so that no `live*` gauge of a dead worker is summed;
- the directory is removed at exit when wsgid made it.

Where the directory is, with "auto" and `metrics_bind` set: `PROMETHEUS_MULTIPROC_DIR` if the
environment already names one (emptied of `*.db` files at start); else
`$RUNTIME_DIRECTORY/prometheus` under systemd; else a new private directory in the temporary
directory. A master started by USR2 takes the directory over as it is (the old workers still
write to it) and removes it at exit if its predecessor made it (`handoff.py` says so).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from types import ModuleType
from typing import Any

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_identity = "master"  # whose files this process writes: "master", or "slot<N>" in a worker


def identity() -> str:
    """The process identifier `prometheus_client` names this process's files after."""
    return _identity


class AppMetricsError(Exception):
    """The directory cannot be made ready (the message names it and why)."""


class AppMetrics:
    """The managed directory of one master."""

    def __init__(self, path: str, owned: bool, managed: bool = True) -> None:
        self.path = path
        self.owned = owned  # made by wsgid: removed at exit
        # False: only the directory an old master made, kept to be removed (metrics are off)
        self.managed = managed

    def enter_worker(self, slot: int) -> None:
        """In a worker, after the fork and before the app is imported: name its files."""
        global _identity
        _identity = f"slot{slot}"

    def worker_gone(self, slot: int) -> None:
        """A worker was reaped: its live gauges no longer count."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(f"slot{slot}", self.path)  # type: ignore[no-untyped-call]

    def close(self, handed_over: bool) -> None:
        """At the master's exit: remove the directory if wsgid made it and no new master
        (USR2) goes on with it."""
        if self.owned and not handed_over:
            shutil.rmtree(self.path, ignore_errors=True)


def choose(setting: str, environ: Mapping[str, str], handed: str | None) -> tuple[str, bool]:
    """The directory to manage for `prometheus_multiproc_dir` = `setting` (a path, or "auto"
    with metrics_bind set), and whether wsgid makes it (so removes it). `handed`: the one an
    old master made and handed over (USR2), which this master owns now."""
    if setting != "auto":
        return setting, False  # the user's: never removed
    given = environ.get(VARIABLE)
    if given:
        return given, given == handed
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return os.path.join(runtime, "prometheus"), False
    try:
        return tempfile.mkdtemp(prefix="wsgid-prometheus-"), True
    except OSError as exc:
        raise _no_temporary_directory(exc) from exc


def prepare(
    path: str,
    owned: bool,
    owner: tuple[int, int] | None,
    upgrade: bool,
    environ: MutableMapping[str, str],
) -> AppMetrics:
    """Make `path` ready for the workers and name it in `environ` (the master's, before the
    app is imported). `upgrade`: a master started by USR2, whose predecessor's workers still
    write there: nothing is removed."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        if not upgrade:
            for stale in glob.glob(os.path.join(glob.escape(path), "*.db")):
                os.remove(stale)
        if owner is not None:
            os.chown(path, *owner)
    except OSError as exc:
        raise _not_ready(path, exc) from exc
    environ[VARIABLE] = path
    _install_value_class()
    return AppMetrics(path, owned)


def check(setting: str, environ: Mapping[str, str]) -> None:
    """`wsgid check`: the AppMetricsError `prepare` would raise for the directory `choose`
    picks, found out without making it or emptying it (`wsgid.paths.makedirs_possible`).

    A new private directory in the temporary directory (`choose`'s last resort) is not
    made: that would be the check's side effect, and mkdtemp fails only when there is no
    usable temporary directory, which `tempfile.gettempdir` finds out (by writing and removing
    a file in each candidate, as mkdtemp would).
    """
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if setting == "auto" and not environ.get(VARIABLE) and not runtime:
        try:
            tempfile.gettempdir()
        except OSError as exc:
            raise _no_temporary_directory(exc) from exc
        return
    from wsgid import paths

    path, _ = choose(setting, environ, None)
    try:
        paths.makedirs_possible(path)
    except OSError as exc:
        raise _not_ready(path, exc) from exc


def _not_ready(path: str, exc: OSError) -> AppMetricsError:
    return AppMetricsError(
        f"prometheus_multiproc_dir {path}: {exc.strerror or exc}; set it to a directory"
        " the master can create and give to the workers' user, or to off"
    )


def _no_temporary_directory(exc: OSError) -> AppMetricsError:
    # A read-only root filesystem (a container's readOnlyRootFilesystem) with no writable
    # TMPDIR: tempfile tried TMPDIR, /tmp, /var/tmp, /usr/tmp and the working directory.
    return AppMetricsError(
        f"prometheus_multiproc_dir auto: no writable temporary directory for the app's"
        f" multiprocess metrics ({exc.strerror or exc}: TMPDIR, /tmp, /var/tmp and the working"
        " directory were tried); set TMPDIR or prometheus_multiproc_dir to a writable"
        " directory (an emptyDir volume in Kubernetes), or prometheus_multiproc_dir to off"
    )


def _install_value_class() -> None:
    """Name files after `identity()`: now if prometheus_client is imported, else at its import."""
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        _use_identity(values)
    elif not any(isinstance(finder, _ValuesHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ValuesHook())


def _use_identity(values: Any) -> None:  # prometheus_client.values
    values.ValueClass = values.MultiProcessValue(process_identifier=identity)


class _ValuesHook(importlib.abc.MetaPathFinder):
    """Finds `prometheus_client.values` as usual, and sets its value class once it has run
    (before any metric exists: `prometheus_client.metrics` reads it when one is made)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "prometheus_client.values":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: the module is imported once per process
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _use_identity(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
