"""Build hook: compile wsgid's per-request modules to C with mypyc.

Everything else about the package is declared in pyproject.toml; this file
only adds the compiled extension modules. The modules listed in `HOT` are
the ones every request runs through (the connection loop, the workers and
the HTTP layer). mypyc compiles their type-annotated source as it is, so the
compiled build and the pure-Python one are the same code, and each `.py` is
still shipped beside its extension module (Python imports the extension).
One module is C written by hand: `logs/records.c`, the usual json and logfmt
access records (its docstring says why); a pure-Python build renders those in
Python instead.

`WSGID__COMPILE` chooses (docs/performance.md, "The compiled hot path"):

- `auto` (default): compile when mypyc and a C compiler work, else build the
  pure-Python package and say why;
- `yes`: compile or fail (what the .deb, the .rpm and the image use);
- `no`: pure Python.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HOT = [
    "daemon/wsgid/http/abnf.py",
    "daemon/wsgid/http/allowlist.py",
    "daemon/wsgid/http/body.py",
    "daemon/wsgid/http/cache.py",
    "daemon/wsgid/http/date.py",
    "daemon/wsgid/http/environ.py",
    "daemon/wsgid/http/exchange.py",
    "daemon/wsgid/http/fields.py",
    "daemon/wsgid/http/forwarded.py",
    "daemon/wsgid/http/parser.py",
    "daemon/wsgid/http/policy.py",
    "daemon/wsgid/http/proxy_protocol.py",
    "daemon/wsgid/http/request.py",
    "daemon/wsgid/http/response.py",
    "daemon/wsgid/logs/access.py",
    "daemon/wsgid/logs/clock.py",
    "daemon/wsgid/logs/escape.py",
    "daemon/wsgid/scoreboard.py",
    "daemon/wsgid/workers/admission.py",
    "daemon/wsgid/workers/base.py",
    "daemon/wsgid/workers/connection.py",
    "daemon/wsgid/workers/loop.py",
    "daemon/wsgid/workers/sync.py",
    "daemon/wsgid/workers/gthread.py",
    "daemon/wsgid/workers/tls_connection.py",
    "daemon/wsgid/workers/unpatched.py",
]  # not workers/interpreted.py: it must stay interpreted (its docstring says why)
MYPY_FLAGS = [
    "--config-file=",
    "--cache-dir=/dev/null",
    "--ignore-missing-imports",
    "--follow-imports=silent",
]
CHOICES = ("auto", "yes", "no")
# Modules written in C by hand, built with the mypyc ones (and left out with them).
C_SOURCES = ["daemon/wsgid/logs/records.c"]


def c_module(source: str) -> Any:
    """The extension module of a C source: `wsgid.logs.records` for its `records.c`."""
    name = source.removeprefix("daemon/").removesuffix(".c").replace("/", ".")
    return Extension(name, [source])


def extensions(mode: str) -> list[Any]:
    """The mypyc extension modules for `HOT` and the C ones, or none when not compiling."""
    if mode == "no":
        remove_compiled()
        return []
    try:
        from mypyc.build import mypycify

        # The build type-checks on its own terms, whatever is installed: the
        # project's mypy settings (strict, for linting) and cache stay out of
        # it, and the libraries wsgid uses need not be in the build
        # environment (their types only matter to modules left uncompiled).
        # opt_level 3 is mypyc's default; debug_level 0 drops C debug info (a
        # smaller package, nothing lost for Python tracebacks).
        compiled = mypycify(MYPY_FLAGS + HOT, opt_level="3", debug_level="0")
        return [*compiled, *map(c_module, C_SOURCES)]
    except Exception as exc:
        if mode == "yes":
            raise
        traceback.print_exc()
        say_pure_python(exc)
        return []


class BuildExt(build_ext):
    """build_ext that, in `auto` mode, falls back to pure Python if compiling fails."""

    required = False

    def finalize_options(self) -> None:
        super().finalize_options()
        # build/ is shared by every interpreter of the same version and platform (a venv's
        # pyenv Python and /usr/bin/python3 both use build/lib.linux-x86_64-cpython-311), and
        # mypyc rewrites its C files only when they change: modules another interpreter
        # compiled would pass for up to date and ship with its linker flags. Always compile.
        self.force = True

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:
            if self.required:
                raise
            # Some modules may have been built before the failure: without the
            # rest they could not be imported, so none is kept.
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            self.extensions.clear()
            say_pure_python(exc)


def say_pure_python(exc: Exception) -> None:
    remove_compiled()
    print(
        f"wsgid: not compiling the hot path ({type(exc).__name__}: {exc}); "
        "building pure Python, which serves the same requests, slower",
        file=sys.stderr,
    )


def remove_compiled() -> None:
    """Delete compiled modules an earlier in-place build (pip install -e) left beside the
    sources: Python would import them instead of the sources of a pure-Python build."""
    here = Path(__file__).resolve().parent
    for module in [
        *(here / "daemon").glob("*__mypyc.*.so"),
        *(here / "daemon").glob("wsgid/**/*.so"),
    ]:
        module.unlink()


def main() -> None:
    mode = os.environ.get("WSGID__COMPILE", "auto").strip().lower() or "auto"
    if mode not in CHOICES:
        sys.exit(f"WSGID__COMPILE={mode!r}: expected one of {', '.join(CHOICES)}")
    BuildExt.required = mode == "yes"
    setup(ext_modules=extensions(mode), cmdclass={"build_ext": BuildExt})


main()
