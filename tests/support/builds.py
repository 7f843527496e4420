"""The two builds of wsgid under test: compiled (mypyc, see setup.py) and pure Python.

Owns: finding the compiled modules of the wsgid the tests import, spotting stale ones (a source
edited after its module was compiled: Python would import the old compiled code), and a
pure-Python copy of the package, for servers that must run without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import wsgid

PACKAGE = Path(wsgid.__file__).resolve().parent


def compiled_modules() -> list[Path]:
    """The extension modules in the package (none in a pure-Python install)."""
    return sorted(PACKAGE.rglob("*.so"))


def source_of(module: Path) -> Path:
    """`loop.py` for `loop.cpython-311-x86_64-linux-gnu.so`; `records.c` for a module written
    in C (setup.py's C_SOURCES), which has no Python source."""
    stem = module.name.split(".", 1)[0]
    source = module.with_name(stem + ".py")
    return source if source.exists() else module.with_name(stem + ".c")


def stale_modules() -> list[Path]:
    """Sources changed after their compiled module was built."""
    return [
        source_of(so)
        for so in compiled_modules()
        if source_of(so).stat().st_mtime > so.stat().st_mtime
    ]


def pure_copy(dest: Path) -> Path:
    """Copy the package's Python sources under `dest`; put `dest` first on PYTHONPATH."""
    shutil.copytree(PACKAGE, dest / "wsgid", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return dest


# The builds a suite runs against: both where this install is compiled.
BUILDS = ["compiled", "pure"] if compiled_modules() else ["pure"]
