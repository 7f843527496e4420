"""The settings are read without the model: from `wsgid/settings/table.py`, generated from it.

Reading the settings (every start, HUP and `wsgid check`) validates them with pydantic-core's
validator of the table's schema, and takes each setting's flags, table and default from the
table's rows. Here: the committed table is what the model renders; reading the settings
imports neither pydantic nor the model; the table's validator gives what the model gives, on
values of every setting, good and bad; and a pydantic-core other than the table's makes the
loader build the same validator from the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from pydantic import ValidationError

from wsgid.runtime import RuntimeSettings
from wsgid.settings import SPECS, Settings, load, load_settings, table
from wsgid.settings.tablegen import TABLE_TARGET, collect_rows, table_source

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "run `.venv/bin/python scripts/gen-schema` and commit the result"

pytestmark = pytest.mark.usefixtures("no_wsgid_environment")


def test_the_settings_table_is_current() -> None:
    if pydantic_core.__version__ != table.PYDANTIC_CORE:
        pytest.skip(
            f"the table was rendered with pydantic-core {table.PYDANTIC_CORE}, this is"
            f" {pydantic_core.__version__}: its schema is that version's (the loader builds its"
            " validator from the model here, see test_another_pydantic_core_...)"
        )
    committed = (REPO / TABLE_TARGET).read_text(encoding="utf-8")
    assert table_source() == committed, f"{TABLE_TARGET} is stale: {REGENERATE}"


def test_the_specs_are_the_rows_the_model_renders() -> None:
    rows = collect_rows()
    assert list(SPECS) == list(rows)
    for name, spec in SPECS.items():
        assert (
            spec.name,
            spec.option,
            spec.is_list,
            spec.is_bool,
            spec.is_table,
            spec.is_optional,
            spec.default,
            spec.description,
            spec.accepts,
        ) == rows[name]


def test_reading_the_settings_imports_neither_pydantic_nor_the_model(tmp_path: Path) -> None:
    config = tmp_path / "app.toml"
    config.write_text('app = "demo:app"\n[server]\nbind = ["127.0.0.1:9"]\n', encoding="utf-8")
    code = (
        "import json, os, sys\n"
        "from wsgid.settings import load_settings\n"
        f"loaded = load_settings(['-c', {str(config)!r}, '-w', '3'], {{}})\n"
        "assert loaded.settings.workers == 3 and loaded.settings.bind == ('127.0.0.1:9',)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGID_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)
    assert "pydantic_core" in modules  # the validator
    heavy = [m for m in modules if m == "pydantic" or m.startswith("pydantic.")]
    assert heavy == []
    assert "wsgid.settings.model" not in modules
    assert "wsgid.settings.annotated" not in modules


# Values tried on every setting: what the sources hand over (strings from flags and the
# environment, TOML's types, a Python config's), good and bad for one setting or another.
PROBES: tuple[Any, ...] = (
    None,
    "",
    " ",
    "0",
    "1",
    "-1",
    "2.5",
    "1e3",
    "inf",
    "nan",
    "true",
    "Off",
    "yes",
    "abc",
    "a\0b",
    "127.0.0.1:8000",
    "unix:/tmp/x.sock",
    ":8080",
    "X-Request-ID",
    "mod:app",
    "mod.func",
    "gevent",
    "gunicorn.workers.ggevent.GeventWorker",
    "0o22",
    "022",
    "10.0.0.0/8",
    "*",
    '{"X-Proto": "https"}',
    "A=1",
    "DEBUG",
    "TLSv1_3",
    "CERT_REQUIRED",
    0,
    1,
    2,
    -5,
    3.0,
    2.5,
    float("inf"),
    True,
    False,
    [],
    ["a", "b"],
    ["127.0.0.1:1", "[::1]:2"],
    ("A=1", "B=2"),
    {},
    {"X-Forwarded-Proto": "https"},
    {"k": 1},
)


def _outcome(validate: Any, values: dict[str, Any], strict: bool) -> Any:
    try:
        return ("ok", validate(values, strict))
    except ValidationError as exc:
        return ("error", [(e["type"], e["loc"], e["msg"]) for e in exc.errors()])


def _by_model(values: dict[str, Any], strict: bool) -> dict[str, Any]:
    model = Settings.model_validate(values, strict=strict)
    return {name: getattr(model, name) for name in SPECS}


def _by_table(values: dict[str, Any], strict: bool) -> dict[str, Any]:
    return load.validate_values(values, strict=strict)


@pytest.mark.parametrize("strict", [False, True], ids=["lax", "strict"])
@pytest.mark.parametrize("name", list(SPECS))
def test_the_table_validates_each_setting_as_the_model_does(name: str, strict: bool) -> None:
    for probe in PROBES:
        values = {name: probe}
        assert _outcome(_by_table, values, strict) == _outcome(_by_model, values, strict), probe


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"app": "a:b", "paste": "x.ini"},
        {"reload": True, "preload_app": True},
        {"worker_class": "gevent", "preload_app": "true"},
        {"metrics_bind": "127.0.0.1:9", "bind": ["127.0.0.1:9"]},
        {"keyfile": "k.pem"},
        {"cert_reqs": "required", "certfile": "c.pem"},
        {"certfile": "c.pem", "tls_binds": ["127.0.0.1:1"]},
        {"proxy_protocol_binds": ["127.0.0.1:8000"]},
        {"proxy_protocol": "v2", "proxy_protocol_binds": ["127.0.0.1:1"]},
        {"nope": 1},
    ],
    ids=lambda v: ",".join(v) or "nothing",
)
def test_the_table_applies_the_combined_rules_as_the_model_does(values: dict[str, Any]) -> None:
    assert _outcome(_by_table, values, False) == _outcome(_by_model, values, False)


def test_another_pydantic_core_makes_the_loader_build_the_validator_from_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["demo:app", "-w", "3", "-b", "127.0.0.1:9", "--forwarded-allow-ips", "10.0.0.0/8"]
    expected = load_settings(argv, {})
    load._validator.cache_clear()
    monkeypatch.setattr(table, "PYDANTIC_CORE", "0.0.0")
    monkeypatch.setattr(table, "SCHEMA", {"type": "none"})  # never read
    try:
        assert load_settings(argv, {}) == expected
        assert isinstance(expected.settings, RuntimeSettings)
        with pytest.raises(ValidationError):
            load.validate_values({"workers": 0})
    finally:
        load._validator.cache_clear()
