"""Modules imported on first use (`wsgid.deferred_modules`), and the master's start without them.

- The master's modules import structlog's bound logger only (the processors are wsgid's own),
  without its package (its console, stdlib and configuration modules), `asyncio` (nor the `ssl`,
  `subprocess` and `concurrent.futures` it brings) or `uuid`; an app that uses structlog gets
  all of it, its async methods and thread-local wrapper included, and configuring it leaves
  wsgid's own error log as it was.
- `deferring`: the library gets a stand-in that answers from the real module once asked;
  no stand-in is left in `sys.modules`; an imported module is left alone; a submodule imported
  inside the block finds the real package.
- `without_package_init`: reading the settings loads pydantic-core's compiled module without
  its package's Python (`core_schema`, `typing_extensions`), nor a config file's readers
  when there is no file, and their values and errors are pydantic-core's; the stand-in
  package runs its `__init__` on first use, once, and keeps the submodule; a package
  imported already is used as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgid.deferred_modules import deferring, without_package_init


def run_python(code: str) -> str:
    """`code` in a fresh interpreter (nothing imported yet); what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGID_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_masters_modules_import_neither_asyncio_nor_uuid() -> None:
    modules = json.loads(
        run_python("import json, sys\nimport wsgid.master\nprint(json.dumps(sorted(sys.modules)))")
    )
    assert "structlog._native" in modules and "structlog.processors" not in modules
    # structlog's package is a stand-in: its console, stdlib and configuration modules wait.
    assert [
        m for m in modules if m in ("structlog.dev", "structlog.stdlib", "structlog._config")
    ] == []
    assert [m for m in modules if m.split(".")[0] in ("asyncio", "uuid", "ssl")] == []
    assert "concurrent.futures" not in modules


def test_an_app_that_uses_structlog_gets_all_of_it_and_leaves_wsgids_log_alone() -> None:
    code = """
import logging, sys, warnings
import wsgid.master
from wsgid.logs.pipelines import error_logger

class Sink:
    def write(self, record, severity):
        print("wsgid:", record.strip())

ours = error_logger(Sink(), "logfmt", "info")
import structlog
import asyncio
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
log = structlog.wrap_logger(logging.getLogger("t"), wrapper_class=structlog.stdlib.BoundLogger)
asyncio.run(log.ainfo("from a coroutine", n=1))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    print(structlog.threadlocal.wrap_dict(dict).__name__)
ours.info("server event", k=1)
real = sys.modules["structlog"]
print(type(structlog).__name__, type(real).__name__, real.processors is structlog.processors)
"""
    lines = run_python(code).splitlines()
    assert lines[0] == "n=1 event='from a coroutine'"
    assert lines[1].startswith("WrappedDict-")  # uuid4 named it
    # wsgid's logger keeps its own pipeline after the app configured structlog's.
    assert lines[2].startswith("wsgid: ") and "server event" in lines[2] and "k=1" in lines[2]
    assert "event='server event'" not in lines[2]
    # The app's `structlog` is the stand-in, answering from the real package, now imported
    # with the modules wsgid had imported already.
    assert lines[3] == "_OnFirstUse module True"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh package `deferred_probe` (with a submodule `part`) on sys.path; gone after."""
    root = tmp_path / "deferred_probe"
    root.mkdir()
    (root / "__init__.py").write_text(
        # Each run of the package's code leaves a mark beside it.
        "import pathlib\npathlib.Path(__file__).with_name('runs').open('a').write('x')\n"
        "LOADS = [1]\nVALUE = 'real'\n",
        encoding="utf-8",
    )
    (root / "part.py").write_text("PART = 'part'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "deferred_probe"
    for name in [m for m in sys.modules if m.split(".")[0] == "deferred_probe"]:
        del sys.modules[name]


def test_a_deferred_module_is_imported_when_first_asked(package: str) -> None:
    with deferring(package):
        import deferred_probe as held  # type: ignore[import-not-found]
    assert package not in sys.modules  # not imported, and no stand-in left behind
    assert held.VALUE == "real"
    real = sys.modules[package]
    assert real is not held and real.LOADS == [1]
    assert held.LOADS is real.LOADS  # answered from the one real module, loaded once


def test_a_module_imported_already_is_left_alone(package: str) -> None:
    __import__(package)
    real = sys.modules[package]
    with deferring(package):
        import deferred_probe as held
    assert held is real and sys.modules[package] is real


def test_a_submodule_imported_inside_the_block_finds_the_real_package(package: str) -> None:
    with deferring(package):
        from deferred_probe import part

        inside = sys.modules[package]
    assert part.PART == "part"
    assert sys.modules[package] is inside and inside.VALUE == "real"
    assert type(inside).__name__ == "module"


def test_reading_the_settings_loads_pydantic_cores_compiled_module_only() -> None:
    code = """
import json, sys
from wsgid.runtime import ConfigError
from wsgid.settings.load import load_settings
loaded = load_settings(["-w", "3", "app:x"], {})
modules = sorted(sys.modules)
try:
    load_settings(["-w", "many", "app:x"], {})  # a refusal's message imports the model
except ConfigError as exc:
    message = str(exc)
print(json.dumps([loaded.settings.workers, message, modules]))
"""
    workers, message, modules = json.loads(run_python(code))
    assert workers == 3
    assert "-w" in message and "many" in message
    assert "pydantic_core._pydantic_core" in modules
    assert [m for m in modules if m in ("pydantic_core.core_schema", "typing_extensions")] == []
    assert "pydantic" not in modules
    # Without a config file, neither its TOML parser nor the gunicorn .py reader is imported.
    assert [m for m in modules if m in ("tomllib", "tomli", "wsgid.settings.pyfile")] == []


def test_the_package_left_out_runs_its_init_once_on_first_use(package: str) -> None:
    part = without_package_init(package, "part")
    assert part.PART == "part"
    runs = Path(str(part.__file__)).with_name("runs")
    assert not runs.exists()  # the package's __init__ has not run
    stand_in = sys.modules[package]
    assert stand_in.VALUE == "real"  # first use: the real package, imported now
    real = sys.modules[package]
    assert real is not stand_in and real.part is part and real.LOADS == [1]
    import deferred_probe  # noqa: F401  (an import now finds the real package)

    assert sys.modules[package] is real and runs.read_text() == "x"


def test_a_package_imported_already_is_used_as_it_is(package: str) -> None:
    real = __import__(package)
    part = without_package_init(package, "part")
    assert sys.modules[package] is real and real.part is part
