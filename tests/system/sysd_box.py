"""A real systemd as PID 1 of its own namespaces, with wsgid installed, for the system tests.

How it boots (no container package needed, only util-linux):

- The test process creates two fresh cgroups of its own (`name=systemd` v1 and the unified
  v2 hierarchy, `wsgid-box-<id>`), puts the launcher in them and runs
  `unshare --pid --fork --mount --uts --ipc --cgroup` on the script below, so the box's
  cgroup root is that cgroup and its systemd manages nothing of the host's.
- Inside the new mount namespace (private propagation: nothing is mounted on the host), the
  script builds the box's root: an overlay whose lower layer is the host's `/` (a
  non-recursive bind) and whose upper layer is a tmpfs, so the box sees the host's systemd,
  python3 and tools while every write stays in RAM. It installs wsgid the way a package
  would: /usr/bin/wsgid, a .pth making the repository's `daemon/` and the venv's
  site-packages importable by /usr/bin/python3 (both bind-mounted read-only), the unit files
  in /usr/lib/systemd/system, configuration in /etc/wsgid. Units the host enabled are
  disabled in the copy; the box gets its own machine id and hostname.
- It mounts /proc, /sys, fresh cgroup file systems, /run, /dev, `pivot_root`s into the
  overlay, marks the box's mounts shared (below) and execs /lib/systemd/systemd. The network
  namespace is the host's: a TCP port the box's wsgid.socket listens on answers on the
  host's loopback.
- Shared mounts: on a host, systemd marks `/` shared at boot, but not in a container
  (`container=` is set), where it expects the container manager to have done it. Services
  rely on it: `LoadCredential=` mounts a unit's credentials from a helper's own mount
  namespace, and without propagation PID 1 and the service see an empty directory. The
  box's mounts were all made private first, so they share nothing with the host's.

`stop()` powers the box off, kills whatever is left in its cgroups, and removes them and
the work directory; it is safe to call after any failure, and `sweep()` cleans what an
interrupted earlier run left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
PREFIX = "wsgid-box-"

INNER = r"""#!/bin/bash
# Runs as PID 1 of the new namespaces: build the root, then become systemd.
set -euo pipefail
W=$1 REPO=$2 SITE=$3
R=$W/root
mount --make-rprivate /
mkdir -p "$W/lower" "$W/ovl" "$R"
mount --bind / "$W/lower"
mount -t tmpfs -o mode=755 tmpfs "$W/ovl"
mkdir -p "$W/ovl/upper" "$W/ovl/work"
mount -t overlay overlay -o "lowerdir=$W/lower,upperdir=$W/ovl/upper,workdir=$W/ovl/work" "$R"

# The host's enabled units stay off; systemd starts only what the tests ask for.
find "$R/etc/systemd/system" -mindepth 2 -path '*.wants/*' -delete
find "$R/etc/systemd/system" -mindepth 2 -path '*.requires/*' -delete
ln -sfn /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"
systemd-id128 new > "$R/etc/machine-id"
echo wsgid-box > "$R/etc/hostname"
hostname wsgid-box

# wsgid, installed as a package would install it.
mkdir -p "$R/usr/lib/wsgid/src" "$R/usr/lib/wsgid/site-packages"
mount --bind "$REPO/daemon" "$R/usr/lib/wsgid/src"
mount -o remount,bind,ro "$R/usr/lib/wsgid/src"
mount --bind "$SITE" "$R/usr/lib/wsgid/site-packages"
mount -o remount,bind,ro "$R/usr/lib/wsgid/site-packages"
cp -a "$W/install/." "$R/"

mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/sys/fs/cgroup"
mkdir "$R/sys/fs/cgroup/systemd" "$R/sys/fs/cgroup/unified"
mount -t cgroup -o none,name=systemd cgroup "$R/sys/fs/cgroup/systemd"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup/unified"
# Read-only, so systemd does not mount v1 controllers rooted at the host's hierarchy.
mount -o remount,ro "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
# As systemd does on a host (not in a container): LoadCredential= needs the propagation.
mount --make-rshared /
export container=unshare
exec /lib/systemd/systemd --system
"""

WRAPPER = """#!/usr/bin/python3
import sys

from wsgid.cli import main

sys.exit(main())
"""

PTH = """/usr/lib/wsgid/src
import site; site.addsitedir("/usr/lib/wsgid/site-packages")
"""


class BoxError(RuntimeError):
    """The box could not be booted (the message says why)."""


def unavailable() -> str | None:
    """Why a box cannot boot on this machine, or None if it can."""
    if os.geteuid() != 0:
        return "booting systemd in a namespace needs root"
    for tool in ("unshare", "nsenter", "systemd-id128"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install util-linux systemd)"
    if not Path("/lib/systemd/systemd").exists():
        return "/lib/systemd/systemd is missing (apt-get install systemd)"
    if not all((root / "cgroup.procs").exists() for root in CGROUP_ROOTS):
        return "needs the hybrid cgroup layout (/sys/fs/cgroup/systemd and /unified)"
    python = Path("/usr/bin/python3")
    if not python.exists():
        return "/usr/bin/python3 is missing (apt-get install python3)"
    probe = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if probe.stdout.strip() != ours:
        return (
            f"the box runs wsgid with /usr/bin/python3 ({probe.stdout.strip()}) on this venv's"
            f" packages, built for Python {ours}"
        )
    return None


def sweep() -> None:
    """Remove the cgroups (and kill the processes) an interrupted earlier run left behind.

    A box's cgroup is named after the test process that booted it (`wsgid-box-<pid>-<id>`):
    only boxes whose owner is gone are swept, never one a concurrent test run is using.
    """
    for root in CGROUP_ROOTS:
        for path in root.glob(PREFIX + "*"):
            owner = path.name[len(PREFIX) :].partition("-")[0]
            if owner.isdigit() and Path(f"/proc/{owner}").exists():
                continue
            _kill_cgroup(path)
            _remove_cgroup(path)


def _cgroup_tree(path: Path) -> list[Path]:
    inner = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    return [*inner, path]  # deepest first: a cgroup is removed after its children


def _kill_cgroup(path: Path) -> None:
    for _ in range(50):
        pids = []
        for group in _cgroup_tree(path):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (group / "cgroup.procs").read_text().split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _remove_cgroup(path: Path) -> None:
    for group in _cgroup_tree(path):
        with contextlib.suppress(FileNotFoundError, OSError):
            group.rmdir()


class SystemdBox:
    """One booted box. Use as a context manager, or call start() and stop()."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.work = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/tmp"))
        self.install = self.work / "install"
        self.cgroups = [root / f"{PREFIX}{os.getpid()}-{self.id}" for root in CGROUP_ROOTS]
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.port = 0  # for the tests' own use: the TCP port the box's socket listens on
        self.console = self.work / "console.log"

    # ------------------------------------------------------------------ set-up

    def put(self, path: str, text: str, mode: int = 0o644) -> None:
        """Install a file at `path` in the box (before start(), or use write() after)."""
        target = self.install / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def install_wsgid(self) -> None:
        self.put("/usr/bin/wsgid", WRAPPER, 0o755)
        self.put("/usr/lib/python3/dist-packages/wsgid-box.pth", PTH)
        for name in ("wsgid.service", "wsgid.socket", "wsgid@.service", "wsgid@.socket"):
            self.put(f"/usr/lib/systemd/system/{name}", (REPO / "systemd" / name).read_text())

    def start(self, timeout: float = 60.0) -> SystemdBox:
        reason = unavailable()
        if reason:
            raise BoxError(reason)
        sweep()
        inner = self.work / "inner.sh"
        inner.write_text(INNER)
        inner.chmod(0o755)
        site = sysconfig.get_paths()["purelib"]
        for cgroup in self.cgroups:
            cgroup.mkdir()
        procs_files = " ".join(str(c / "cgroup.procs") for c in self.cgroups)
        launcher = (
            f'for f in {procs_files}; do echo $$ > "$f"; done; '
            f"exec unshare --pid --fork --mount --uts --ipc --cgroup {inner} "
            f"{self.work} {REPO} {site}"
        )
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                ["sh", "-c", launcher],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            children = _children(self.proc.pid)
            if children:
                self.leader = children[0]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise BoxError(f"the box did not start:\n{self.console.read_text()}")
            else:
                time.sleep(0.02)
        while True:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BoxError(
                    f"systemd did not finish booting (state {state!r}):\n"
                    f"{self.console.read_text()[-4000:]}"
                )
            time.sleep(0.05)
        return self

    # ------------------------------------------------------------------ driving it

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the box (all its namespaces)."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the box: {' '.join(argv)} -> {result.returncode}\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.run("systemctl", "--no-pager", *args, check=check).stdout.strip()

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "-P", prop, unit)

    def path(self, inside: str) -> Path:
        """A path in the box, as seen from the host (through /proc/<pid 1>/root)."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit, check=False).stdout

    def diagnose(self, unit: str) -> str:
        status = self.run("systemctl", "--no-pager", "status", unit, check=False).stdout
        return f"--- systemctl status {unit}:\n{status}\n--- journal:\n{self.journal(unit)}"

    # ------------------------------------------------------------------ teardown

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.leader:
                with contextlib.suppress(Exception):
                    self.run("systemctl", "poweroff", "--no-block", check=False, timeout=10)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)
                self.proc.wait(timeout=15)
        for cgroup in self.cgroups:
            if cgroup.exists():
                _kill_cgroup(cgroup)
                _remove_cgroup(cgroup)
        shutil.rmtree(self.work, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What stop() failed to remove (for the tests' own leak check)."""
        left = [str(c) for c in self.cgroups if c.exists()]
        if self.work.exists():
            left.append(str(self.work))
        return left

    def __enter__(self) -> SystemdBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
