"""`reload`: the master's one watcher turns an edit into a HUP-style reload; a broken edit
changes nothing until it is fixed.

The app is a module each test writes into the server's working directory (which the loader
puts on sys.path): `reload_edit_app`, answering `{"pid", "version"}` through
`lifecycle_app.make_app`. The servers run with PYTHONDONTWRITEBYTECODE=1: two versions of
the same size written within one second would otherwise meet a .pyc that Python still takes
for current (it compares the source's mtime in whole seconds and its size).

Probes of the version served run with a `LoadLoop` going: a lone connection that arrives
just as the old workers stop can wait for the next connection before anyone accepts it (a
stopping worker swallows the EPOLLEXCLUSIVE wake-up: workers/loop.py `_on_listener`, a bug of
every reload that these tests do not own); other clients' connections wake the new workers.

Nothing here waits a fixed time. That something did not happen (a log file written in the
project) is shown by what did: the reload that a real edit made afterwards names only the
edited file, and is the only one.

The gevent and eventlet kinds reload too (gunicorn's reloader runs inside the patched worker and
crashes there, gunicorn#1494; wsgid's watcher is the master's, which is never patched).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import procs
from support.client import poll
from support.load import LoadLoop, events, new_generation, wait_event
from support.server import WorkDir, WsgidServer

MODULE = "reload_edit_app"
APP = f"{MODULE}:app"
ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
ENGINES = ["inotify", "poll"]
# The acceptance budget from an edit to the new code's first response. The poll engine
# looks once a second, so it gets one more.
BUDGET = {"inotify": 2.0, "poll": 3.0}


def source(version: str) -> str:
    return f"from lifecycle_app import make_app\n\napp = make_app({version!r})\n"


# Edits that do not import, with the text that the worker's logged traceback must show.
BROKEN = {
    "syntax_error": ("from lifecycle_app import make_app\n\napp = make_app('v2'\n", "SyntaxError"),
    "name_error": (
        "from lifecycle_app import make_app\n\napp = make_app(undefined_version)\n",
        "NameError: name 'undefined_version' is not defined",
    ),
    "module_not_found": (
        "from lifecycle_app import make_app\nfrom reload_helper import VERSION\n\n"
        "app = make_app(VERSION)\n",
        "No module named 'reload_helper'",
    ),
}


def app_path(workdir: WorkDir) -> Path:
    return workdir.cwd / f"{MODULE}.py"


def version_served(server: WsgidServer) -> str:
    resp = server.get("/pid")
    assert resp.status == 200, resp.text
    return str(resp.json()["version"])  # type: ignore[index]


def serves(server: WsgidServer, version: str) -> Callable[[], bool]:
    def check() -> bool:
        server.check_running()
        return version_served(server) == version

    return check


def start(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, *args: str, workers: int = 2
) -> WsgidServer:
    app_path(workdir).write_text(source("v1"))
    server = wsgid(APP, "--reload", *args, workers=workers, env=ENV)
    wait_event(server.errlog, "reload.watching", check=server.check_running)
    # Every worker has imported v1: one still importing when a test edits the module would
    # serve the edit without any reload.
    wait_event(
        server.errlog, "worker.booted", count=workers, timeout=30, check=server.check_running
    )
    assert version_served(server) == "v1"
    return server


@pytest.mark.parametrize(
    ("engine", "kind"),
    [
        ("inotify", "sync"),
        ("poll", "sync"),
        ("inotify", "gthread"),
        ("inotify", "gevent"),
        ("inotify", "eventlet"),
    ],
)
def test_reload_edit_under_load_serves_new_code_in_budget_with_new_workers_no_failure(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, engine: str, kind: str
) -> None:
    server = start(wsgid, workdir, "--reload-engine", engine, "--worker-class", kind)
    old = set(server.wait_workers(2))
    with LoadLoop(server.port, keepalive=3, fresh=1) as load:
        load.wait_served(50)
        app_path(workdir).write_text(source("v2"))
        poll(serves(server, "v2"), timeout=BUDGET[engine], what=f"v2 within {BUDGET[engine]} s")
        new = set(poll(new_generation(server, old, 2), timeout=30, what="2 new workers only"))
        assert procs.wait_gone(sorted(old), timeout=10) == []
        mark = time.monotonic()
        load.wait_pids(lambda pids: bool(pids) and pids <= new, since=mark)
    assert not load.stats.failures, load.stats.summary() + "\n" + server.errlog()
    assert set(load.stats.pids(since=0)) & old, "the old workers served first"
    (changed,) = events(server.errlog(), "reload.code_changed", engine=engine)
    assert changed.get("files") == str(app_path(workdir)), changed.line
    assert server.stop(timeout=30) == 0


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_reload_broken_edit_keeps_old_workers_serving_and_the_fix_recovers(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, broken: str
) -> None:
    text, shown = BROKEN[broken]
    server = start(wsgid, workdir)
    old = set(server.wait_workers(2))
    with LoadLoop(server.port, keepalive=2, fresh=1) as load:
        load.wait_served(30)
        app_path(workdir).write_text(text)
        wait_event(server.errlog, "reload.failed", timeout=30, check=server.check_running)
        # The worker logged why, with the traceback from the app's code.
        (failure,) = events(server.errlog(), "worker.app_load_failed")[:1]
        assert shown in failure.text, failure.text  # the error, as a block below the line
        # Same master, same workers, the old code, still serving.
        mark = time.monotonic()
        load.wait_served(30, since=mark)
        poll(lambda: set(server.worker_pids()) == old, timeout=20, what="only the old workers")
        assert version_served(server) == "v1"

        # The fix: the missing module is created beside the app, or the app is written again.
        if broken == "module_not_found":
            (workdir.cwd / "reload_helper.py").write_text("VERSION = 'v3'\n")
        else:
            app_path(workdir).write_text(source("v3"))
        poll(serves(server, "v3"), timeout=30, what="the fixed code")
        new = set(poll(new_generation(server, old, 2), timeout=30, what="2 new workers only"))
        mark = time.monotonic()
        load.wait_pids(lambda pids: bool(pids) and pids <= new, since=mark)
    assert not load.stats.failures, load.stats.summary() + "\n" + server.errlog()
    assert server.stop(timeout=30) == 0, "the exit status must be unaffected"


@pytest.mark.parametrize("engine", ENGINES)
def test_reload_atomic_save_via_os_replace(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, engine: str
) -> None:
    server = start(wsgid, workdir, "--reload-engine", engine)
    temp = workdir.cwd / f"{MODULE}.py.new"
    with LoadLoop(server.port, keepalive=1, fresh=1) as load:
        # An editor's save: the new text in another file, renamed over the module.
        temp.write_text(source("v2"))
        os.replace(temp, app_path(workdir))
        poll(serves(server, "v2"), timeout=BUDGET[engine], what="v2 after os.replace")
        # The replaced file (a new inode) is still watched: a second save reloads again.
        temp.write_text(source("v3"))
        os.replace(temp, app_path(workdir))
        poll(serves(server, "v3"), timeout=30, what="v3 after a second os.replace")
    assert not load.stats.failures, load.stats.summary() + "\n" + server.errlog()
    assert server.stop(timeout=30) == 0


def test_reload_ignores_log_files_and_editor_temp_files_in_the_project(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # Even a glob that matches everything in the project does not make them count.
    server = start(wsgid, workdir, "--reload-extra-file", "**/*")
    cwd = workdir.cwd
    noise = [
        cwd / "app.log",
        cwd / "logs" / "error.log",
        cwd / "app.log.1",
        cwd / f".{MODULE}.py.swp",
        cwd / f"{MODULE}.py~",
        cwd / f".#{MODULE}.py",
        cwd / "4913",
        cwd / "__pycache__" / f"{MODULE}.cpython-311.pyc",
    ]
    for path in noise:
        path.parent.mkdir(exist_ok=True)
        path.write_text("written while serving\n")
    with open(cwd / "app.log", "a") as log:
        log.write("and again\n")
    # Then a real edit: its reload is the only one and names the module alone.
    with LoadLoop(server.port, keepalive=1, fresh=1):
        app_path(workdir).write_text(source("v2"))
        poll(serves(server, "v2"), timeout=30, what="v2")
    changed = events(server.errlog(), "reload.code_changed")
    assert [e.get("files") for e in changed] == [str(app_path(workdir))], changed
    assert len(events(server.errlog(), "reload.started")) == 1
    assert server.stop(timeout=30) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_reload_extra_files_glob_matches_a_file_created_later(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, engine: str
) -> None:
    (workdir.cwd / "templates").mkdir()
    server = start(
        wsgid, workdir, "--reload-engine", engine, "--reload-extra-file", "templates/**/*.html"
    )
    old = set(server.wait_workers(2))
    # A directory that did not exist when the server started, and a file in it.
    (workdir.cwd / "templates" / "pages").mkdir()
    page = workdir.cwd / "templates" / "pages" / "index.html"
    page.write_text("<p>new</p>\n")
    (changed,) = wait_event(
        server.errlog, "reload.code_changed", timeout=10, check=server.check_running
    )
    assert changed.get("files") == str(page), changed.line
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    poll(new_generation(server, old, 2), timeout=30, what="2 new workers only")
    assert server.stop(timeout=30) == 0


def inotify_instances(pid: int) -> int:
    """How many inotify instances process `pid` holds (its fds that link to one)."""
    count = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") == "anon_inode:inotify":
                count += 1
        except FileNotFoundError:
            pass  # closed meanwhile
    return count


def test_reload_with_8_workers_has_exactly_one_inotify_instance_in_the_master(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = start(wsgid, workdir, "--reload-engine", "inotify", workers=8)
    for version in ("v1", "v2"):
        if version == "v2":  # and again once a reload has replaced all eight
            with LoadLoop(server.port, keepalive=1, fresh=1):
                app_path(workdir).write_text(source("v2"))
                poll(serves(server, "v2"), timeout=30, what="v2")
        # Polled: a worker holds the master's descriptors for the moment after its fork.
        poll(one_instance_in_the_master(server), timeout=10, what="one inotify instance")
    assert server.stop(timeout=30) == 0


def one_instance_in_the_master(server: WsgidServer) -> Callable[[], dict[int, int]]:
    """A poll condition: 8 workers run and only the master holds an inotify instance, once."""

    def check() -> dict[int, int]:
        workers = server.worker_pids()
        held = {pid: n for pid in [server.pid, *workers] if (n := inotify_instances(pid))}
        return held if len(workers) == 8 and held == {server.pid: 1} else {}

    return check


def test_reload_with_preload_app_is_refused_at_validation(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    app_path(workdir).write_text(source("v1"))
    server = wsgid(APP, "--reload", "--preload", start=False, env=ENV)
    assert server.wait_exit(30) == 2
    assert "reload and preload_app cannot be combined" in server.errlog(), server.errlog()


def test_reload_turned_off_and_on_by_hup_closes_and_reopens_the_watcher(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    config = workdir.root / "wsgid.toml"
    config.write_text("[application]\nreload = true\n")
    app_path(workdir).write_text(source("v1"))
    server = wsgid(APP, "--config", str(config), workers=2, env=ENV)
    poll(lambda: inotify_instances(server.pid) == 1, timeout=10, what="the watcher")

    config.write_text("[application]\nreload = false\n")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", generation=2, timeout=30, check=server.check_running)
    poll(lambda: inotify_instances(server.pid) == 0, timeout=10, what="no watcher")

    config.write_text("[application]\nreload = true\n")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", generation=3, timeout=30, check=server.check_running)
    with LoadLoop(server.port, keepalive=1, fresh=1):
        app_path(workdir).write_text(source("v2"))
        poll(serves(server, "v2"), timeout=30, what="v2 once reload is on again")
    assert len(events(server.errlog(), "reload.code_changed")) == 1
    assert server.stop(timeout=30) == 0


# --- modules found after the boot, failed imports, links, directories made again ----------


def edit_until_served(
    server: WsgidServer, path: Path, make: Callable[[str], str], version: str
) -> None:
    """Write `version` into `path` until it is served: each write is an edit of its own, so
    one written before the watcher knew the file is made again once it does. Probed with a
    load going, as the module's other probes (see the top)."""

    def check() -> bool:
        path.write_text(make(version))
        return serves(server, version)()

    with LoadLoop(server.port, keepalive=1, fresh=1):
        poll(check, timeout=30, interval=0.5, what=f"{version} from an edit of {path.name}")


def value(version: str) -> str:
    return f"VERSION = {version!r}\n"


def make_package(where: Path, name: str, module: str, version: str) -> Path:
    """The package `name` in `where`, with `module` holding VERSION; its module's path."""
    package = where / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    path = package / f"{module}.py"
    path.write_text(value(version))
    return path


def test_reload_sees_an_edit_of_a_module_the_app_imported_on_a_request(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """Django imports its URLconf and views on the first request: a worker reports the
    modules it imported since the boot, so their edits reload too (gunicorn looks again
    each second)."""
    sub = make_package(workdir.cwd, "lazy_views", "sub", "v1")
    app_path(workdir).write_text(
        "from lifecycle_app import make_app\n\n\n"
        "def app(environ, start_response):\n"
        "    from lazy_views import sub  # on the first request, as a URLconf\n\n"
        "    return make_app(sub.VERSION)(environ, start_response)\n"
    )
    server = wsgid(APP, "--reload", workers=1, env=ENV)
    wait_event(server.errlog, "reload.watching", check=server.check_running)
    assert version_served(server) == "v1"
    edit_until_served(server, sub, value, "v2")
    assert server.stop(timeout=30) == 0


def test_reload_a_new_module_that_failed_to_import_is_watched_and_its_fix_reloads(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The module that broke is no longer in sys.modules, in a directory nothing watched:
    the worker that failed reports the files of its failure."""
    server = start(wsgid, workdir)
    mod = make_package(workdir.cwd, "new_package", "mod", "v2")
    mod.write_text("VERSION = (\n")  # a syntax error
    app_path(workdir).write_text(
        "from lifecycle_app import make_app\nfrom new_package.mod import VERSION\n\n"
        "app = make_app(VERSION)\n"
    )
    wait_event(server.errlog, "reload.failed", timeout=30, check=server.check_running)
    assert version_served(server) == "v1"
    edit_until_served(server, mod, value, "v3")
    assert server.stop(timeout=30) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_reload_sees_an_edit_of_a_module_behind_a_symlink(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, engine: str
) -> None:
    shared = workdir.root / "shared"
    shared.mkdir()
    target = shared / "reload_helper.py"
    target.write_text(value("v1"))
    (workdir.cwd / "reload_helper.py").symlink_to(target)
    app_path(workdir).write_text(
        "from lifecycle_app import make_app\nfrom reload_helper import VERSION\n\n"
        "app = make_app(VERSION)\n"
    )
    server = wsgid(APP, "--reload", "--reload-engine", engine, workers=1, env=ENV)
    wait_event(server.errlog, "worker.booted", timeout=30, check=server.check_running)
    assert version_served(server) == "v1"
    edit_until_served(server, target, value, "v2")
    assert server.stop(timeout=30) == 0


def test_reload_a_package_directory_deleted_and_made_again_is_watched_again(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """A branch switch or an `rm -rf` and copy: the inotify watch of the old directory ended
    with it; the new generation's report watches the new one."""
    util = make_package(workdir.cwd, "made_again", "util", "v1")
    app_path(workdir).write_text(
        "from lifecycle_app import make_app\nfrom made_again.util import VERSION\n\n"
        "app = make_app(VERSION)\n"
    )
    server = wsgid(APP, "--reload", "--reload-engine", "inotify", workers=1, env=ENV)
    wait_event(server.errlog, "worker.booted", timeout=30, check=server.check_running)
    assert version_served(server) == "v1"
    shutil.rmtree(util.parent)
    make_package(workdir.cwd, "made_again", "util", "v2")
    with LoadLoop(server.port, keepalive=1, fresh=1):
        poll(serves(server, "v2"), timeout=30, what="v2 from the directory made again")
    edit_until_served(server, util, value, "v3")
    assert server.stop(timeout=30) == 0
