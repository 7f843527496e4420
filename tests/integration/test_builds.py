"""The compiled build (mypyc, setup.py) and the pure-Python one: which one runs, and that both
serve. The conformance suite runs whole against both (tests/conformance/conftest.py).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import wsgid as package
from support.builds import PACKAGE, compiled_modules, source_of
from support.server import APPS_DIR, WsgidServer

REPO = Path(__file__).resolve().parents[2]


def setup_list(name: str) -> set[str]:
    """A list of paths in setup.py (HOT, C_SOURCES), read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"setup.py has no {name} list")


def hot_modules() -> set[str]:
    return setup_list("HOT")


@pytest.mark.skipif(
    os.environ.get("WSGID__COMPILE", "auto").strip().lower() == "no",
    reason="WSGID__COMPILE=no: a pure-Python install on purpose",
)
def test_the_test_install_runs_every_hot_module_compiled() -> None:
    # make test installs with a C compiler at hand (scripts/apt-deps.sh): a build that fell
    # back to pure Python would ship the slow path unnoticed.
    assert package.build() == "compiled"
    compiled = {str(source_of(so).relative_to(REPO)) for so in compiled_modules()}
    assert compiled == hot_modules() | setup_list("C_SOURCES")
    assert PACKAGE.is_relative_to(REPO / "daemon")  # the checkout's code, not another install


def version(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "wsgid", "--version"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip()


CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")


def _is_final(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    return isinstance(annotation, ast.Name) and annotation.id == "Final"


def _float_tuple(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Tuple) and any(
        isinstance(item, ast.Constant) and isinstance(item.value, float) for item in value.elts
    )


def test_the_module_constants_of_every_hot_module_are_final() -> None:
    # mypyc reads a Final module constant from a C static (or inlines it), and any other name
    # through the module's dict at each use: about 40 dict lookups a request on the hot path
    # before they were Final (docs/performance.md). A tuple of floats is the exception, kept
    # not Final on purpose: mypyc (2.4) cannot read one back (scoreboard.DURATION_BUCKETS).
    wrong = []
    for module in sorted(hot_modules()):
        for node in ast.parse((REPO / module).read_text()).body:
            target: ast.expr
            annotation: ast.expr | None
            if isinstance(node, ast.AnnAssign):
                target, annotation, value = node.target, node.annotation, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, annotation, value = node.targets[0], None, node.value
            else:
                continue
            if not (isinstance(target, ast.Name) and CONSTANT.fullmatch(target.id)):
                continue
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "TypeVar":
                continue
            if _is_final(annotation) == _float_tuple(value):
                wrong.append(f"{module}:{node.lineno} {target.id}")
    assert not wrong, "constants that should be Final (or, a tuple of floats, not):\n" + "\n".join(
        wrong
    )


def test_each_build_names_itself_and_serves_the_same_response(
    wsgid: Callable[..., WsgidServer], pure_wsgid: Path
) -> None:
    pure_env = {"PYTHONPATH": os.pathsep.join([str(pure_wsgid), str(APPS_DIR)])}
    expected = package.build()
    assert version({}) == f"wsgid {package.__version__} ({expected})"
    assert version(pure_env) == f"wsgid {package.__version__} (pure Python)"

    servers = {
        expected: wsgid("wsgid.demo:app", workers=1),
        "pure Python": wsgid("wsgid.demo:app", workers=1, env=pure_env),
    }
    answers = set()
    for build, server in servers.items():
        started = server.wait_log("master.started")
        assert f'build="{build}"' in started or f"build={build}" in started, started
        # A class constant, not a per-instance slot, in either build (ClassVar).
        assert "worker_class=sync" in started, started
        resp = server.get("/")
        answers.add((resp.status, resp.headers["Content-Type"], resp.body))
    assert len(answers) == 1, answers


# --- setup.py's WSGID__COMPILE: what a machine without a C compiler gets ----------------------


def build_wheel(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """pip wheel of a copy of this source tree, with `env`; (pip's result, the wheel's files)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        (src / name).write_bytes((REPO / name).read_bytes())
    junk = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info")
    shutil.copytree(REPO / "daemon", src / "daemon", ignore=junk)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--disable-pip-version-check",
         "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=600, check=False,
    )  # fmt: skip
    wheels = list(out.glob("wsgid-*.whl"))
    if not wheels:
        return result, []
    with zipfile.ZipFile(wheels[0]) as whl:
        # A wheel built with extension modules in mind files the package under
        # wsgid-VERSION.data/purelib/ when none got built; it installs the same.
        return result, [name.split("/purelib/", 1)[-1] for name in whl.namelist()]


def compiled_in(files: list[str]) -> list[str]:
    return [f for f in files if f.endswith(".so")]


def test_without_a_c_compiler_the_install_falls_back_to_pure_python(tmp_path: Path) -> None:
    result, files = build_wheel(tmp_path, CC="/bin/false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wsgid/workers/loop.py" in files and not compiled_in(files)
    assert "not compiling the hot path" in result.stderr + result.stdout


def test_wsgid_compile_yes_fails_without_a_c_compiler(tmp_path: Path) -> None:
    result, files = build_wheel(tmp_path, CC="/bin/false", WSGID__COMPILE="yes")
    assert result.returncode != 0 and not files


def test_wsgid_compile_no_builds_pure_python_even_with_a_compiler(tmp_path: Path) -> None:
    result, files = build_wheel(tmp_path, WSGID__COMPILE="no")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wsgid/http/parser.py" in files and not compiled_in(files)


def test_an_unknown_wsgid_compile_value_is_refused_with_the_choices(tmp_path: Path) -> None:
    result, files = build_wheel(tmp_path, WSGID__COMPILE="maybe")
    assert result.returncode != 0 and not files
    assert "WSGID__COMPILE='maybe': expected one of auto, yes, no" in result.stderr
