"""Shared fixtures: real wsgid servers, private work directories, and leak checks.

- `workdir`: a fresh directory tree for one test, removed afterwards; the test errors if any
  process still has its cwd or an open file there (a daemon that escaped its group).
- `wsgid`: a factory `wsgid(app, *args, workers=None, env=None, start=True)` returning a running
  `WsgidServer`; at teardown every server is stopped and the test errors if a process, a socket
  file or a temp file of it was left behind.
- `no_leaked_processes` (autouse): the test errors if any process it started through the
  harness — by process group, session, or as a worker pid seen — outlives it.
- `session_tmp`: the parent of every work directory; the session errors if anything is left
  in it at the end, and removes it.
- `pure_wsgid`: a directory holding a pure-Python copy of the package (support/builds.py), to
  put first on a server's PYTHONPATH.
- `proxies`: real HAProxy and nginx processes for one test (support/proxies.py), stopped
  before the test's wsgid servers; the test errors if one of their processes is left.

A session refuses to start if a compiled module is older than its source: it would test the
old code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import builds, procs
from support.proxies import Proxies
from support.server import WorkDir, WsgidServer

TEMP_PREFIX = "wsgid-test-"

# Every server started by the harness in this session, for the process-leak check.
_STARTED: list[WsgidServer] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = builds.stale_modules()
    if stale:
        names = ", ".join(str(p.relative_to(builds.PACKAGE.parent)) for p in stale)
        pytest.exit(
            f"{names} changed after being compiled, so Python would run the old code; "
            "rebuild with `scripts/setup-env.sh test` (`make test` does it)",
            returncode=4,
        )


@pytest.fixture(scope="session")
def pure_wsgid() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "pure-"))
    try:
        yield builds.pure_copy(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def session_tmp() -> Iterator[Path]:
    """One directory under the system temp dir holding every test's work directory.

    At the end of the session it must be empty (each test removed its own), and is removed.
    """
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "session-"))
    yield root
    left = sorted(p.name for p in root.iterdir())
    shutil.rmtree(root, ignore_errors=True)
    assert not left, f"temporary directories left behind in {root}: {left}"
    assert not root.exists()


@pytest.fixture
def workdir(session_tmp: Path) -> Iterator[WorkDir]:
    root = Path(tempfile.mkdtemp(prefix="test-", dir=session_tmp))
    try:
        yield WorkDir(root)
    finally:
        # Anything still working in the directory escaped the harness's other checks.
        users = procs.users_of(str(root))
        described = procs.describe([st for p in users if (st := procs.read_stat(p))])
        for pid in users:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        procs.wait_gone(users, timeout=5)
        shutil.rmtree(root, ignore_errors=True)
    assert not users, f"processes still using the test's directory: {described}"
    assert not root.exists(), f"could not remove {root}"


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail the test if a process group it started through the harness still has members."""
    first = len(_STARTED)
    yield
    leaked = []
    for server in _STARTED[first:]:
        if server.proc is None:
            continue
        still = server.leftovers()
        if still:
            leaked.append(procs.describe(still))
            procs.kill_group(server.proc.pid)
    del _STARTED[first:]
    assert not leaked, f"processes survived the test: {leaked}"


@pytest.fixture
def wsgid(workdir: WorkDir) -> Iterator[Callable[..., WsgidServer]]:
    servers: list[WsgidServer] = []

    def factory(
        app: str | None,
        *args: str,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        start: bool = True,
        bind_tcp: bool = True,
        command: Callable[[int], list[str]] | None = None,
        timeout: float = 30.0,
    ) -> WsgidServer:
        argv = list(args)
        if workers is not None:
            argv += ["--workers", str(workers)]
        server = WsgidServer(
            app,
            argv,
            workdir=workdir,
            env=env,
            bind_tcp=bind_tcp,
            command=command,
            name=f"wsgid{len(servers)}",
        )
        servers.append(server)
        _STARTED.append(server)
        if start:
            server.start(timeout=timeout, workers=workers)
        else:
            server.spawn()
        return server

    yield factory
    problems = []
    for server in servers:
        problems += server.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def proxies(workdir: WorkDir, wsgid: Callable[..., WsgidServer]) -> Iterator[Proxies]:
    """The proxies of one test, in its work directory.

    It asks for `wsgid` only to be torn down first: a proxy still running when the servers
    are stopped would hold connections open, and HAProxy's stats socket would count as a
    socket file wsgid left behind.
    """
    site = Proxies(workdir.root)
    yield site
    problems = site.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def readable_by_all() -> Iterator[Callable[..., Path]]:
    """Copies of app modules in a directory any user can read, for workers that drop root.

    A worker running as `nobody` imports the app after dropping privileges, so the app must
    be readable by `nobody` even when the checkout lives somewhere private (a clone under
    /root, say). Call it with the module files to copy; it returns the directory to put on
    `--pythonpath`. The directory is removed afterwards.
    """
    made: list[Path] = []

    def copy(*modules: Path) -> Path:
        target = Path(tempfile.mkdtemp(prefix="wsgid-readable-"))
        made.append(target)
        target.chmod(0o755)
        for module in modules:
            shutil.copy(module, target / module.name)
            (target / module.name).chmod(0o644)
        return target

    yield copy
    for target in made:
        shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
def daemon_name() -> Iterator[str]:
    """A unique `--name` for a `--daemon` test; at teardown no process with it may be left
    (escaped daemons are killed and fail the test)."""
    name = f"wsgid-daemon-test-{uuid.uuid4().hex[:8]}"
    yield name
    left = [st for st in procs.all_stats() if name in procs.cmdline(st.pid) and st.state != "Z"]
    for st in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(st.pid, signal.SIGKILL)
    assert not left, f"daemon processes left running: {procs.describe(left)}"
