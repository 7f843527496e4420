"""`reload`: its settings, and the watcher's parts without a server (reloader.py).

The watcher against real servers is tests/integration/test_reload.py; here: gunicorn's
spellings, the refusal with preload_app, what is ignored, the workers' report channel, and
each engine seeing a change, an atomic save and a file created later, in a temp directory.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsgid import reloader
from wsgid.settings import ConfigError, load_settings

APP = "pkg.mod:app"


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


def test_reload_flags_take_gunicorn_spellings() -> None:
    settings = load_settings(
        [APP, "--reload", "--reload-engine", "POLL", "--reload-extra-file", "a/*.html",
         "--reload-extra-file", "b.cfg"],
        {},
    ).settings  # fmt: skip
    assert settings.reload is True
    assert settings.reload_engine == "poll"
    assert settings.reload_extra_files == ("a/*.html", "b.cfg")
    defaults = load_settings([APP], {}).settings
    assert (defaults.reload, defaults.reload_engine, defaults.reload_extra_files) == (
        False, "auto", (),
    )  # fmt: skip


def test_reload_engine_refuses_an_unknown_engine() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings([APP, "--reload-engine", "watchdog"], {})
    assert "auto, inotify or poll" in str(info.value)


def test_reload_with_preload_app_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings([APP, "--reload", "--preload"], {})
    message = str(info.value)
    assert "reload and preload_app cannot be combined" in message
    assert "old code" in message


@pytest.mark.parametrize(
    "name",
    [".app.py.swp", ".app.py.swx", "app.py~", ".#app.py", "4913", "app.pyc", "error.log",
     "error.log.1", "__pycache__/app.cpython-311.pyc", "__pycache__"],
)  # fmt: skip
def test_ignored_editor_temp_files_bytecode_and_logs(name: str) -> None:
    assert reloader.ignored(f"/srv/project/{name}")


@pytest.mark.parametrize("name", ["app.py", "templates/index.html", "settings.toml", "logo.svg"])
def test_not_ignored(name: str) -> None:
    assert not reloader.ignored(f"/srv/project/{name}")


def test_worker_report_reaches_the_watcher_in_frames(tmp_path: Path) -> None:
    watcher = reloader.Reloader(reloader.Poll(), (), str(tmp_path), _Log())
    try:
        # Many long paths: the report spans several frames, each one atomic.
        fake = [str(tmp_path / ("m" * 200 + f"{i}.py")) for i in range(100)]
        for i, path in enumerate(fake):
            module = type(sys)(f"_reload_fake_{i}")
            module.__file__ = path
            sys.modules[module.__name__] = module
        pid = os.fork()
        if pid == 0:
            try:
                reloader.ModuleReports(os.dup(watcher.report_w)).send_new()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        watcher.handle([watcher.report_r], time.monotonic())
        assert set(fake) <= watcher.modules
        # The standard library and wsgid itself are left out.
        assert os.__file__ not in watcher.modules
        assert reloader.__file__ not in watcher.modules
    finally:
        for name in [n for n in sys.modules if n.startswith("_reload_fake_")]:
            del sys.modules[name]
        watcher.close()


def _ripe(watcher: reloader.Reloader, deadline: float = 5.0) -> list[str]:
    """Drive the watcher as the master's loop does until a change is ripe."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        now = time.monotonic()
        readable, _, _ = select.select(watcher.fds(), [], [], watcher.wait(now, True))
        now = time.monotonic()
        watcher.handle(readable, now)
        if paths := watcher.ripe(now):
            return paths
    return []


ENGINES: dict[str, Callable[[], reloader.Engine]] = {
    "inotify": reloader.Inotify,
    "poll": reloader.Poll,
}


def _watching(engine: str, tmp_path: Path, extra: tuple[str, ...] = ()) -> reloader.Reloader:
    module = tmp_path / "app.py"
    module.write_text("A = 1\n")
    watcher = reloader.Reloader(ENGINES[engine](), extra, str(tmp_path), _Log())
    reloader._send(watcher.report_w, [os.fsencode(module)])  # a worker's report
    watcher.handle([watcher.report_r], time.monotonic())
    assert watcher.modules == {str(module)}
    return watcher


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engine_sees_an_atomic_save_once_debounced(engine: str, tmp_path: Path) -> None:
    watcher = _watching(engine, tmp_path)
    try:
        temp = tmp_path / "app.py.new"
        temp.write_text("A = 22\n")
        os.replace(temp, tmp_path / "app.py")
        assert _ripe(watcher) == [str(tmp_path / "app.py")]
        assert watcher.ripe(time.monotonic() + 10) == [], "a change is reported once"
    finally:
        watcher.close()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engine_sees_a_file_created_later_that_matches_a_glob(engine: str, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    watcher = _watching(engine, tmp_path, ("templates/**/*.html",))
    try:
        (tmp_path / "templates" / "a.log").write_text("x\n")  # matches nothing, ignored anyway
        (tmp_path / "templates" / "deep").mkdir()
        (tmp_path / "templates" / "deep" / "page.html").write_text("<p>\n")
        assert _ripe(watcher) == [str(tmp_path / "templates" / "deep" / "page.html")]
    finally:
        watcher.close()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engine_sees_a_new_module_beside_the_others(engine: str, tmp_path: Path) -> None:
    watcher = _watching(engine, tmp_path)
    try:
        (tmp_path / "notes.txt").write_text("not a module\n")
        (tmp_path / "helper.py").write_text("VERSION = 2\n")  # fixes a ModuleNotFoundError
        assert _ripe(watcher) == [str(tmp_path / "helper.py")]
    finally:
        watcher.close()


def test_inotify_ignores_a_log_file_beside_the_modules(tmp_path: Path) -> None:
    watcher = _watching("inotify", tmp_path)
    try:
        (tmp_path / "app.log").write_text("a line\n")
        (tmp_path / "app.py").write_text("A = 3\n")
        assert _ripe(watcher) == [str(tmp_path / "app.py")]
    finally:
        watcher.close()


def test_glob_base_is_the_deepest_directory_without_a_wildcard() -> None:
    assert reloader._glob_base("/srv/p/templates/**/*.html") == "/srv/p/templates"
    assert reloader._glob_base("/srv/p/conf/*.toml") == "/srv/p/conf"
    assert reloader._glob_base("/srv/p/settings.toml") == "/srv/p"
