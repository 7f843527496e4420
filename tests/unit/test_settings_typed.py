"""The settings serving processes read are typed: mypy knows every name and its type.

`wsgid.runtime.RuntimeSettings` gets its attributes from `wsgid/runtime_fields.py`, generated
from the model by scripts/gen-schema. Here: the committed file is what the model renders, each
value the model validates fits the type the file declares, and mypy, run as `make lint` runs
it, rejects a misspelt setting, a value used as the wrong type and an assignment to a setting,
and accepts the right ones.
"""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest

from wsgid import runtime_fields
from wsgid.runtime import RuntimeSettings
from wsgid.runtime_fields import SETTING_NAMES
from wsgid.settings import SPECS, Settings, load_settings
from wsgid.settings.codegen import TARGET, fields_source

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "run `.venv/bin/python scripts/gen-schema` and commit the result"


# main() and load() read os.environ: the caller's WSGID_* variables must not leak in.
pytestmark = pytest.mark.usefixtures("no_wsgid_environment")


def test_the_typed_fields_module_is_current() -> None:
    committed = (REPO / TARGET).read_text(encoding="utf-8")
    assert fields_source() == committed, f"{TARGET} is stale: {REGENERATE}"


def test_the_name_lists_follow_the_model() -> None:
    assert tuple(SPECS) == SETTING_NAMES
    assert set(runtime_fields.HOOK_SETTINGS) == {n for n, s in SPECS.items() if s.table == "hooks"}


def fits(value: object, hint: Any) -> bool:
    """Whether `value` is of the type `hint` (the shapes runtime_fields.py uses)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            fits(k, args[0]) and fits(v, args[1]) for k, v in value.items()
        )
    if hint is float:
        return type(value) is float  # an int would pass mypy's float but not mypyc's
    return type(value) is hint


@pytest.mark.parametrize(
    "argv",
    [
        ["app:x"],
        ["app:x", "-w", "3", "-t", "12", "--keep-alive", "5", "-m", "022", "-u", "1000",
         "-b", "unix:/tmp/s", "-b", "[::1]:9", "--log-syslog", "--log-level", "DEBUG",
         "--access-logfile", "-", "--log-config-dict", '{"version": 1}', "-e", "A=1",
         "--on-starting", "m:f", "--header-map", "refuse", "--pythonpath", "a,b"],
    ],
)  # fmt: skip
def test_every_value_the_model_validates_fits_its_declared_type(argv: list[str]) -> None:
    # The class's own annotations: its base's bookkeeping is not a setting.
    hints = inspect.get_annotations(runtime_fields.SettingFields, eval_str=True)
    assert list(hints) == list(SPECS)
    settings = load_settings(argv, {}).settings
    for name, hint in hints.items():
        assert fits(getattr(settings, name), hint), (name, getattr(settings, name), hint)


def test_a_copy_of_the_model_has_its_values_and_survives_pickling() -> None:
    model = Settings(app="m:app", workers=4, timeout=7, raw_env=("A=1",))
    copy = RuntimeSettings.copy_of(model)
    assert all(getattr(copy, name) == getattr(model, name) for name in SPECS)
    assert pickle.loads(pickle.dumps(copy)) == copy


def test_derived_values() -> None:
    def of(*argv: str) -> RuntimeSettings:
        return load_settings(["app:x", *argv], {}).settings

    assert of().worker_kind == "sync"
    assert of("--threads", "4").worker_kind == "gthread"  # gunicorn's rule
    assert of("-k", "pkg.mod.Worker", "--threads", "4").worker_kind == "pkg.mod.Worker"
    limits = of("--limit-request-line", "100", "--header-map", "refuse").limits
    assert (limits.request_line, limits.header_map) == (100, "refuse")
    where = of("--log-syslog", "--disable-redirect-access-to-syslog").log_targets
    assert (where.error.kind, where.access, where.access_syslog) == ("stream", None, None)
    assert where.error_syslog is not None and where.error_syslog.path == "/dev/log"
    assert of("--when-ready", "m:ready", "--on-exit", "m:bye").hook_imports == (
        ("when_ready", "m:ready"),
        ("on_exit", "m:bye"),
    )


# What a serving module may write, and what mypy --strict must refuse.
WELL_TYPED = """\
from wsgid.runtime import LoadedSettings, RuntimeSettings
from wsgid.workers.base import Worker


def idle_for(settings: RuntimeSettings) -> float:
    return settings.keepalive


def workers(loaded: LoadedSettings) -> int:
    return loaded.settings.workers


def grace(worker: Worker) -> float:
    return worker.settings.graceful_timeout
"""
# (what WELL_TYPED reads, a misspelling of it, the attribute mypy names)
MISSPELT = (
    ("settings.keepalive", "settings.keepaliv", "keepaliv"),
    ("loaded.settings.workers", "loaded.settings.wrokers", "wrokers"),
    ("worker.settings.graceful_timeout", "worker.settings.graceful_timout", "graceful_timout"),
)


def test_mypy_rejects_a_misspelt_setting_and_accepts_the_right_names(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(WELL_TYPED)
    bad = tmp_path / "bad.py"
    source = WELL_TYPED
    for right, wrong, _ in MISSPELT:
        source = source.replace(f"return {right}\n", f"return {wrong}\n")
    # The values are typed too, not Any: a float where a str is wanted is an error.
    source += "\n\ndef name(settings: RuntimeSettings) -> str:\n    return settings.timeout\n"
    # And read-only (`FrozenRecord` is a dataclass to mypy): an assignment is an error.
    source += "\n\ndef more(settings: RuntimeSettings) -> None:\n    settings.workers = 4\n"
    bad.write_text(source)
    # The project's mypy and configuration (strict; mypy_path is relative to the repository).
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), str(good), str(bad)],
        cwd=REPO, capture_output=True, text=True, check=False,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "good.py" not in out, out
    for _, _, attribute in MISSPELT:
        assert f'"RuntimeSettings" has no attribute "{attribute}"' in out, out
    assert 'Incompatible return value type (got "float", expected "str")' in out, out
    assert 'Property "workers" defined in "RuntimeSettings" is read-only' in out, out
    assert out.count("[attr-defined]") == len(MISSPELT), out
