"""Modules imported on first use (`wsgid.deferred_modules`), and the master's start without them.

- The master's modules import structlog without `asyncio` (nor the `ssl`, `subprocess` and
  `concurrent.futures` it brings) or `uuid`; structlog's async methods and its thread-local
  wrapper, which do use them, still work once wsgid's logs are imported.
- `deferring`: the library gets a stand-in that answers from the real module once asked;
  no stand-in is left in `sys.modules`; an imported module is left alone; a submodule imported
  inside the block finds the real package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgid.deferred_modules import deferring


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
    assert "structlog" in modules
    assert [m for m in modules if m.split(".")[0] in ("asyncio", "uuid", "ssl")] == []
    assert "concurrent.futures" not in modules


def test_structlogs_async_methods_and_thread_local_wrapper_still_work() -> None:
    code = """
import logging, sys, warnings
import wsgid.master
import structlog
held = type(structlog.stdlib.asyncio).__name__
import asyncio
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = structlog.wrap_logger(
    logging.getLogger("t"),
    wrapper_class=structlog.stdlib.BoundLogger,
    processors=[structlog.processors.KeyValueRenderer()],
)
asyncio.run(log.ainfo("from a coroutine", n=1))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    print(structlog.threadlocal.wrap_dict(dict).__name__)
print(held, type(asyncio).__name__, sys.modules["asyncio"] is asyncio)
"""
    lines = run_python(code).splitlines()
    assert lines[0] == "n=1 event='from a coroutine'"
    assert lines[1].startswith("WrappedDict-")  # uuid4 named it
    # structlog holds the stand-in, which answered; the app's asyncio is the real module.
    assert lines[2] == "_OnFirstUse module True"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh package `deferred_probe` (with a submodule `part`) on sys.path; gone after."""
    root = tmp_path / "deferred_probe"
    root.mkdir()
    (root / "__init__.py").write_text("LOADS = [1]\nVALUE = 'real'\n", encoding="utf-8")
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
