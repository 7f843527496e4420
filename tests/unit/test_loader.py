"""The app loader: every accepted `app` form and every failure message."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgid.loader import AppLoadError, load_app
from wsgid.runtime import RuntimeSettings
from wsgid.settings import Settings

DEFAULTS = RuntimeSettings.copy_of(Settings())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory of app modules on sys.path, removed from sys.modules afterwards."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    saved_path = list(sys.path)
    yield tmp_path
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(project: Path, name: str, source: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def settings(
    app: str, chdir: str | None = None, pythonpath: tuple[str, ...] = ()
) -> RuntimeSettings:
    # Not validated by the model, which would refuse the empty `app` one test needs.
    return DEFAULTS.replace(app=app, chdir=chdir, pythonpath=pythonpath)


APP_SOURCE = """
def application(environ, start_response):
    return []
def app(environ, start_response):
    return [b"app"]
class Holder:
    def inner(environ, start_response):
        return []
holder = Holder()
def create(name="x", *, debug=False):
    def made(environ, start_response):
        return [name.encode(), str(debug).encode()]
    return made
not_callable = 42
"""


def test_module_colon_attribute(project: Path) -> None:
    write(project, "ldr_a.py", APP_SOURCE)
    assert load_app(settings("ldr_a:app"))({}, None) == [b"app"]


def test_dotted_attribute(project: Path) -> None:
    write(project, "ldr_b.py", APP_SOURCE)
    assert load_app(settings("ldr_b:holder.inner")) is not None


def test_factory_call_with_literal_arguments(project: Path) -> None:
    write(project, "ldr_c.py", APP_SOURCE)
    assert load_app(settings("ldr_c:create()"))({}, None) == [b"x", b"False"]
    made = load_app(settings("ldr_c:create('y', debug=True)"))
    assert made({}, None) == [b"y", b"True"]


def test_factory_arguments_must_be_literals(project: Path) -> None:
    write(project, "ldr_d.py", APP_SOURCE)
    with pytest.raises(AppLoadError, match="literals"):
        load_app(settings("ldr_d:create(__import__('os'))"))


def test_module_alone_prefers_application_then_app(project: Path) -> None:
    write(project, "ldr_e.py", APP_SOURCE)
    assert load_app(settings("ldr_e")).__name__ == "application"
    write(project, "ldr_f.py", "def app(e, s):\n    return []\n")
    assert load_app(settings("ldr_f")).__name__ == "app"


def test_missing_module_is_named(project: Path) -> None:
    with pytest.raises(AppLoadError, match="no module named 'nosuchmod'"):
        load_app(settings("nosuchmod:app"))


def test_import_error_inside_the_module_is_told_apart(project: Path) -> None:
    write(project, "ldr_g.py", "import nosuchdependency\napp = None\n")
    with pytest.raises(AppLoadError) as info:
        load_app(settings("ldr_g:app"))
    message = str(info.value)
    assert "'ldr_g' was found, but importing it failed" in message
    assert "nosuchdependency" in message


def test_exception_raised_while_importing(project: Path) -> None:
    write(project, "ldr_h.py", "raise RuntimeError('broken settings')\n")
    with pytest.raises(AppLoadError, match="broken settings"):
        load_app(settings("ldr_h:app"))


def test_missing_attribute(project: Path) -> None:
    write(project, "ldr_i.py", APP_SOURCE)
    with pytest.raises(AppLoadError, match="has no attribute 'nope'"):
        load_app(settings("ldr_i:nope"))


def test_not_callable(project: Path) -> None:
    write(project, "ldr_j.py", APP_SOURCE)
    with pytest.raises(AppLoadError, match="int object is not callable"):
        load_app(settings("ldr_j:not_callable"))


def test_neither_default_name(project: Path) -> None:
    write(project, "ldr_k.py", "x = 1\n")
    with pytest.raises(AppLoadError, match="neither `application` nor `app`"):
        load_app(settings("ldr_k"))


def test_chdir_and_pythonpath_apply_before_import(project: Path, tmp_path: Path) -> None:
    write(project, "sub/ldr_l.py", APP_SOURCE)
    write(project, "lib/ldr_m.py", APP_SOURCE)
    assert load_app(settings("ldr_l:app", chdir=str(project / "sub"))) is not None
    assert load_app(settings("ldr_m:app", pythonpath=(str(project / "lib"),))) is not None


def test_no_app_given() -> None:
    with pytest.raises(AppLoadError, match="no application given"):
        load_app(settings(""))
