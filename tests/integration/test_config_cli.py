"""The real `wsgid` command on configuration: precedence, `config show`, `check`, bad input.

Each test runs `python -m wsgid ...` (or the installed `wsgid` console script) as a subprocess
in its own tmp_path, with an environment cleared of WSGID_*, PORT and WEB_CONCURRENCY, and
looks only at its exit status, stdout and stderr. None of these commands serves, so nothing
is left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from wsgid.exitcodes import ExitCode

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("wsgid")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WSGID_")
        and k not in ("PORT", "WEB_CONCURRENCY", "PYTHONPATH", "GUNICORN_CMD_ARGS")
    }
    env.update(extra or {})
    return env


def wsgid(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgid", *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    result = wsgid(cwd, "config", "show", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def config_error(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run a command that must fail on its configuration; return the message."""
    result = wsgid(cwd, *args, env=env)
    assert result.returncode == ExitCode.CONFIG, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    assert result.stderr.startswith("wsgid: error: ")
    assert result.stderr.count("\n") == 1, "one paragraph"
    return result.stderr


@pytest.fixture
def toml(tmp_path: Path) -> Any:
    def write(text: str, name: str = "wsgid.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- precedence: one test per pair of sources ---------------------------------------------------


def test_file_overrides_default(tmp_path: Path, toml: Any) -> None:
    cfg = toml("[workers]\ngraceful_timeout = 11\n")
    setting = show(tmp_path, "-c", str(cfg))["graceful_timeout"]
    assert setting == {"value": 11.0, "source": f"file:{cfg}"}


def test_env_overrides_file(tmp_path: Path, toml: Any) -> None:
    cfg = toml("graceful_timeout = 11\n")
    setting = show(tmp_path, "-c", str(cfg), env={"WSGID_GRACEFUL_TIMEOUT": "12"})
    assert setting["graceful_timeout"] == {"value": 12.0, "source": "env:WSGID_GRACEFUL_TIMEOUT"}


def test_flag_overrides_env(tmp_path: Path) -> None:
    document = show(tmp_path, "--graceful-timeout", "13", env={"WSGID_GRACEFUL_TIMEOUT": "12"})
    assert document["graceful_timeout"] == {"value": 13.0, "source": "flag:--graceful-timeout"}


def test_env_overrides_default(tmp_path: Path) -> None:
    document = show(tmp_path, env={"WSGID_MAX_REQUESTS": "100"})
    assert document["max_requests"] == {"value": 100, "source": "env:WSGID_MAX_REQUESTS"}


def test_flag_overrides_default(tmp_path: Path) -> None:
    document = show(tmp_path, "--max-requests", "200")
    assert document["max_requests"] == {"value": 200, "source": "flag:--max-requests"}


def test_flag_overrides_file(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[server]\nbind = ["127.0.0.1:8001", "127.0.0.1:8002"]\n')
    document = show(tmp_path, "-c", str(cfg), "-b", "127.0.0.1:8003")
    assert document["bind"] == {"value": ["127.0.0.1:8003"], "source": "flag:-b"}


def test_wsgid_config_variable_names_the_file(tmp_path: Path, toml: Any) -> None:
    cfg = toml("workers = 3\n")
    document = show(tmp_path, env={"WSGID_CONFIG": str(cfg)})
    assert document["workers"] == {"value": 3, "source": f"file:{cfg}"}
    assert document["config"] == {"value": str(cfg), "source": "env:WSGID_CONFIG"}


def test_port_and_web_concurrency_are_defaults_below_the_file(tmp_path: Path, toml: Any) -> None:
    platform = {"PORT": "5000", "WEB_CONCURRENCY": "3"}
    document = show(tmp_path, env=platform)
    assert document["bind"] == {"value": ["0.0.0.0:5000"], "source": "default"}
    assert document["workers"] == {"value": 3, "source": "default"}
    cfg = toml("workers = 2\n")
    assert show(tmp_path, "-c", str(cfg), env=platform)["workers"]["value"] == 2


def test_config_show_table_labels_each_source(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[application]\napp = "wsgid.demo:app"\n[workers]\ntimeout = 12\n')
    result = wsgid(
        tmp_path, "config", "show", "-c", str(cfg), "-w", "3", env={"WSGID_KEEPALIVE": "7"}
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["app"] == ['"wsgid.demo:app"', f"file:{cfg}"]
    assert rows["timeout"] == ["12.0", f"file:{cfg}"]
    assert rows["keepalive"] == ["7.0", "env:WSGID_KEEPALIVE"]
    assert rows["workers"] == ["3", "flag:-w"]
    assert rows["config"] == [f'"{cfg}"', "flag:-c"]
    assert rows["backlog"] == ["2048", "default"]


def test_print_config_is_config_show(tmp_path: Path) -> None:
    result = wsgid(tmp_path, "--print-config", "wsgid.demo:app", "-w", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == wsgid(tmp_path, "config", "show", "wsgid.demo:app", "-w", "2").stdout


# --- bad configuration: exit 2 and a message naming source, key, value, what is accepted ------


def test_unknown_key_in_file_suggests_the_setting(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[workers]\nworkers = 2\nworker_clas = "sync"\n')
    message = config_error(tmp_path, "wsgid.demo:app", "-c", str(cfg))
    assert f"Config file {cfg}, line 3" in message
    assert 'unknown key "workers.worker_clas"' in message
    assert 'Did you mean "worker_class"' in message


def test_key_in_the_wrong_table_is_an_error(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[logging]\nbind = ["127.0.0.1:1"]\n')
    message = config_error(tmp_path, "wsgid.demo:app", "-c", str(cfg))
    assert 'key "bind" does not belong in [logging]' in message and "[server]" in message


def test_bad_value_type_in_file(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[workers]\ntimeout = "soon"\n')
    message = config_error(tmp_path, "wsgid.demo:app", "-c", str(cfg))
    assert f'Config file {cfg}, line 2: workers.timeout = "soon" is not valid' in message
    assert "a number from 0 to 31536000" in message


def test_bad_env_value(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", env={"WSGID_PRELOAD_APP": "maybe"})
    assert 'Environment variable WSGID_PRELOAD_APP="maybe" is not valid' in message
    assert "true or false" in message


def test_unknown_wsgid_env_variable_suggests_the_setting(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", env={"WSGID_WORKRES": "2"})
    assert "WSGID_WORKRES is not a wsgid setting" in message
    assert "Did you mean WSGID_WORKERS?" in message


def test_bad_flag_value(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", "--log-level", "loud")
    assert 'Command-line flag --log-level "loud" is not valid' in message
    assert "debug, info, warning (or warn), error, critical" in message


def test_unknown_flag_suggests_the_flag(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", "--graceful-timout", "3")
    assert "unknown flag --graceful-timout" in message
    assert "Did you mean --graceful-timeout?" in message


def test_raw_env_without_equals_sign(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", "-e", "DEBUG")
    # raw_env's values are hidden as `config show` hides them: the item is named by its place
    assert 'Command-line flag -e: raw_env = ["<hidden>"] is not valid' in message, message
    assert "the item is not of the form KEY=VALUE" in message, message


def test_toml_syntax_error_has_line_and_column(tmp_path: Path, toml: Any) -> None:
    cfg = toml('[server]\nbind = ["127.0.0.1:1"\nworkers = 2\n')
    message = config_error(tmp_path, "wsgid.demo:app", "-c", str(cfg))
    assert f"Config file {cfg} is not valid TOML" in message
    assert "(at line 3, column" in message


def test_missing_config_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, "wsgid.demo:app", "-c", "absent.toml")
    assert f"Config file {tmp_path / 'absent.toml'} not found (given by flag -c)" in message


def test_no_app_anywhere(tmp_path: Path) -> None:
    assert "No application given" in config_error(tmp_path)


def test_bad_configuration_stops_serving_before_anything_starts(tmp_path: Path) -> None:
    # The serve path, not only `config show`: the master must never start on a bad config.
    message = config_error(tmp_path, "wsgid.demo:app", "-w", "0", "-b", "127.0.0.1:0")
    assert "flag -w" in message


# --- check --------------------------------------------------------------------------------------


def test_check_validates_and_imports_the_app(tmp_path: Path, toml: Any) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tinyapp.py").write_text(
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n"
    )
    cfg = toml('[application]\napp = "tinyapp:app"\npythonpath = ["src"]\n')
    result = wsgid(tmp_path, "check", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_check_config_flag_reports_an_app_that_cannot_be_imported(tmp_path: Path) -> None:
    result = wsgid(tmp_path, "--check-config", "no_such_module_here:app")
    assert result.returncode == ExitCode.APP_LOAD_FAILED, result.stderr
    assert "no_such_module_here" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_configuration_errors_first(tmp_path: Path) -> None:
    assert "WSGID_TIMEOUT" in config_error(
        tmp_path, "check", "wsgid.demo:app", env={"WSGID_TIMEOUT": "-1"}
    )


# --- the console script, --version, --help, schema ---------------------------------------------


def test_console_script_version_and_help(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.exists(), "the package is installed with its `wsgid` script"
    version = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("wsgid ")
    help_ = subprocess.run(
        [str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert help_.returncode == 0
    for title in ("Server socket:", "Worker processes:", "Logging:", "-w INT, --workers INT"):
        assert title in help_.stdout


def test_config_schema_matches_the_committed_file(tmp_path: Path) -> None:
    result = wsgid(tmp_path, "config", "schema")
    assert result.returncode == 0, result.stderr
    committed = (REPO / "config" / "wsgid.schema.json").read_text(encoding="utf-8")
    assert result.stdout == committed, "run `.venv/bin/python scripts/gen-schema` and commit"


def test_bundled_example_config_checks_clean(tmp_path: Path) -> None:
    result = wsgid(tmp_path, "check", "-c", str(REPO / "config" / "app.toml"))
    assert result.returncode == 0, result.stderr
