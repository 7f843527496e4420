"""`wsgid.cli.main` in-process: dispatch, exit statuses, output, and the generated artefacts.

The master and the loader are replaced by fakes here; tests/integration/test_config_cli.py runs
the real `wsgid` command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from wsgid import __version__, build, cli, loader, master
from wsgid.settings import (
    GROUPS,
    REFERENCE_BEGIN,
    REFERENCE_END,
    SPECS,
    TABLES,
    LoadedSettings,
    load_settings,
    render_reference,
    schema_text,
    splice_reference,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "config" / "wsgid.schema.json"
DOCS_FILE = REPO / "docs" / "configuration.md"
EXAMPLE_FILE = REPO / "config" / "app.toml"
REGENERATE = "run `.venv/bin/python scripts/gen-schema` and commit the result"


# main() and load() read os.environ: the caller's WSGID_* variables must not leak in.
pytestmark = pytest.mark.usefixtures("no_wsgid_environment")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


# --- dispatch -------------------------------------------------------------------------------------


def test_serve_hands_the_settings_and_a_rereading_reload_to_the_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("workers = 2\n")
    calls: list[Any] = []

    def fake_run(loaded: LoadedSettings, reload: Any = None, app: Any = None) -> int:
        calls.append((loaded, reload))
        return 0

    monkeypatch.setattr(master, "run", fake_run)
    assert cli.main(["x:app", "-c", str(cfg)]) == 0
    loaded, reload = calls[0]
    assert (loaded.command, loaded.settings.workers) == ("serve", 2)
    cfg.write_text("workers = 5\n")  # what a HUP would see
    assert reload().settings.workers == 5


def test_check_loads_the_app_and_exits_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded_apps: list[str | None] = []
    monkeypatch.setattr(loader, "load_app", lambda s: loaded_apps.append(s.app))
    status, out, _ = run(["check", "x:app"], capsys)
    assert (status, loaded_apps) == (0, ["x:app"])
    assert "configuration OK" in out


def test_check_reports_an_app_load_error_with_exit_four(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(settings: Any) -> None:
        raise loader.AppLoadError("no module named 'x'")

    monkeypatch.setattr(loader, "load_app", fail)
    status, _, err = run(["--check-config", "x:app"], capsys)
    assert status == 4
    assert err == "wsgid: error: no module named 'x'\n"


def test_check_shows_an_import_traceback_on_its_lines_each_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(settings: Any) -> None:
        raise loader.AppLoadError(
            "app 'x:app': importing module 'x' raised an error:\n"
            '  File "/srv/x.py", line 1\n    x = (\x1b[2J\nSyntaxError: never closed'
        )

    monkeypatch.setattr(loader, "load_app", fail)
    status, _, err = run(["check", "x:app"], capsys)
    assert status == 4
    assert err.splitlines() == [
        "wsgid: error: app 'x:app': importing module 'x' raised an error:",
        '  File "/srv/x.py", line 1',
        "    x = (\\u001b[2J",
        "SyntaxError: never closed",
    ]


def test_config_error_is_one_line_on_stderr_with_exit_two(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(["x:app", "-w", "zero"], capsys)
    assert (status, out) == (2, "")
    assert err.startswith('wsgid: error: Command-line flag -w "zero" is not valid')
    assert err.count("\n") == 1 and "Traceback" not in err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys)[:2] == (0, f"wsgid {__version__} ({build()})\n")
    assert run(["-v"], capsys)[:2] == (0, f"wsgid {__version__} ({build()})\n")


def test_help_is_grouped_and_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    positions = [out.index(f"\n{group.title}:\n") for group in GROUPS]
    assert positions == sorted(positions), "groups appear in the model's order"
    for spec in SPECS.values():
        for flag in spec.flags:
            assert flag in out
        section = out[out.index(f"\n{spec.group.title}:\n") :]
        assert spec.env_var in section
    assert "wsgid config show" in out and "exit status" in out


def test_protocol_uwsgi_in_a_python_config_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('protocol = "uwsgi"\n')
    status, _, err = run(["check", "-c", str(conf), "pkg:app"], capsys)
    assert status == 2
    assert f'{conf}, line 1: protocol = "uwsgi" is refused: wsgid serves only HTTP' in err


# --- config show / schema -----------------------------------------------------------------------


def test_config_show_table_labels_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[workers]\ntimeout = 12\n")
    monkeypatch.setenv("WSGID_KEEPALIVE", "7")
    status, out, _ = run(["config", "show", "-c", str(cfg), "-w", "3"], capsys)
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert rows["setting"] == ["setting", "value", "source"]
    assert rows["timeout"] == ["timeout", "12.0", f"file:{cfg}"]
    assert rows["keepalive"] == ["keepalive", "7.0", "env:WSGID_KEEPALIVE"]
    assert rows["workers"] == ["workers", "3", "flag:-w"]
    assert rows["backlog"] == ["backlog", "2048", "default"]
    assert set(rows) - {"setting"} == set(SPECS)
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in out.splitlines()}
    assert len(starts) == 1, "the value column is aligned"


def test_config_show_quotes_table_keys_that_are_not_bare_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[logging.logconfig_dict]\nversion = 1\nloggers = {"gunicorn.error" = {}}\n')
    status, out, _ = run(["config", "show", "-c", str(cfg)], capsys)
    row = next(line for line in out.splitlines() if line.startswith("logconfig_dict "))
    value = row.split(maxsplit=1)[1].rsplit(maxsplit=1)[0].strip()
    assert status == 0 and value == '{version = 1, loggers = {"gunicorn.error" = {}}}'
    # As TOML reads it back: one logger named gunicorn.error, not a table gunicorn.
    assert tomllib.loads(f"v = {value}")["v"] == {"version": 1, "loggers": {"gunicorn.error": {}}}


def test_config_show_json_gives_value_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["config", "show", "--json", "-b", "127.0.0.1:1", "-m", "022"], capsys)
    document = json.loads(out)
    assert status == 0 and list(document) == list(SPECS)
    assert document["bind"] == {"value": ["127.0.0.1:1"], "source": "flag:-b"}
    assert document["umask"] == {"value": 0o22, "source": "flag:-m"}


def test_config_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["config", "schema"], capsys)
    assert status == 0
    assert out == SCHEMA_FILE.read_text(encoding="utf-8"), f"schema is stale: {REGENERATE}"


def test_schema_describes_every_file_setting_at_top_level_and_in_its_table() -> None:
    schema = json.loads(schema_text())
    file_settings = {n for n, s in SPECS.items() if s.option.in_file}
    assert set(schema["$defs"]) == file_settings
    assert schema["additionalProperties"] is False
    for name in file_settings:
        assert name in schema["properties"]
        table = schema["properties"][SPECS[name].table]
        if "anyOf" in table:  # `workers`: a setting and a table
            table = table["anyOf"][1]
        assert table["properties"][name] == {"$ref": f"#/$defs/{name}"}
        assert table["additionalProperties"] is False
    assert "config" not in schema["properties"]
    assert set(TABLES) <= set(schema["properties"])


def test_schema_accepts_the_example_and_rejects_a_misplaced_key() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    validator = jsonschema.Draft202012Validator(json.loads(schema_text()))
    with EXAMPLE_FILE.open("rb") as fp:
        assert list(validator.iter_errors(tomllib.load(fp))) == []
    assert list(validator.iter_errors({"server": {"timeout": 3}}))
    assert list(validator.iter_errors({"workers": {"workers": 0}}))


# --- docs and the example file --------------------------------------------------------------


def test_configuration_reference_is_current() -> None:
    text = DOCS_FILE.read_text(encoding="utf-8")
    assert splice_reference(text) == text, f"docs/configuration.md is stale: {REGENERATE}"


def test_reference_documents_every_setting_with_its_flags_and_env_var() -> None:
    reference = render_reference()
    for spec in SPECS.values():
        assert f"#### `{spec.name}`" in reference
        assert f"`{spec.env_var}`" in reference
        for flag in spec.flags:
            assert f"`{flag}" in reference


def test_splicing_the_reference_is_idempotent() -> None:
    doc = f"intro\n\n{REFERENCE_BEGIN}\nold\n{REFERENCE_END}\n\nafter\n"
    once = splice_reference(doc)
    assert splice_reference(once) == once
    assert once.startswith("intro\n\n") and once.endswith(f"{REFERENCE_END}\n\nafter\n")


def test_example_config_is_valid_and_serves_the_demo_app() -> None:
    loaded = load_settings(["-c", str(EXAMPLE_FILE)], {})
    assert loaded.settings.app == "wsgid.demo:app"
    assert loaded.settings.bind == ("127.0.0.1:8000",)


def test_example_config_mentions_every_file_setting() -> None:
    text = EXAMPLE_FILE.read_text(encoding="utf-8")
    missing = [
        name
        for name, spec in SPECS.items()
        if spec.option.in_file and f"\n{name} =" not in text and f"\n# {name} =" not in text
    ]
    assert not missing, f"config/app.toml does not show: {missing}"


def test_config_show_says_when_threads_make_the_sync_kind_run_gthread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(["config", "show", "--threads", "4"], capsys)
    assert status == 0
    assert out.rstrip().endswith(
        "worker_class sync with threads 4 runs the gthread worker, as in gunicorn."
    ), out[-300:]
    _, plain, _ = run(["config", "show"], capsys)
    assert "runs the" not in plain
