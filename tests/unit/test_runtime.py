"""`wsgid.cli.load`: the settings read in a child process are those `load_settings` reads.

`load` forks a child that imports pydantic and validates; this process gets the
`RuntimeSettings` of its values and never imports the model
(tests/integration/test_lean_processes.py checks that in a real server). Here: the child's
settings have every value, type and source `load_settings` gives in-process, errors read the
same, and what the child cannot answer is done in-process exactly as before, with the same
type of result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from wsgid import cli
from wsgid.runtime import ConfigError, RuntimeSettings
from wsgid.runtime_fields import SETTING_NAMES
from wsgid.settings import load_settings

APP = "pkg.mod:app"


# main() and load() read os.environ: the caller's WSGID_* variables must not leak in.
pytestmark = pytest.mark.usefixtures("no_wsgid_environment")


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each `_load_in_child` call returned: None when the child did not answer."""
    seen: list[Any] = []
    real = cli._load_in_child

    def spy(args: list[str], server: Any) -> Any:
        seen.append(real(args, server))
        return seen[-1]

    monkeypatch.setattr(cli, "_load_in_child", spy)
    return seen


def test_the_child_sends_every_value_type_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: list[Any]
) -> None:
    config = tmp_path / "wsgid.toml"
    config.write_text(
        "[workers]\nworkers = 3\ntimeout = 12.5\n[logging]\nlogconfig_dict = {version = 1}\n"
    )
    monkeypatch.setenv("WSGID_RAW_ENV", "A=1,B=2")
    args = [APP, "-c", str(config), "-b", "127.0.0.1:9000", "--preload", "-m", "022"]
    expected = load_settings(args, os.environ)
    loaded = cli.load(args)
    assert answers[0] is not None  # read by the child
    assert type(loaded.settings) is RuntimeSettings
    assert loaded.settings == expected.settings
    for name in SETTING_NAMES:
        copied, value = getattr(loaded.settings, name), getattr(expected.settings, name)
        assert type(copied) is type(value), name
    assert (loaded.sources, loaded.command, loaded.json_output) == (
        expected.sources,
        expected.command,
        expected.json_output,
    )


def test_the_subcommand_and_json_flag_come_back_too() -> None:
    loaded = cli.load(["config", "show", "--json", APP])
    assert (loaded.command, loaded.json_output) == ("config-show", True)


def test_a_configuration_error_reads_as_load_settings_words_it() -> None:
    args = [APP, "-w", "zero"]
    with pytest.raises(ConfigError) as in_process:
        load_settings(args, os.environ)
    with pytest.raises(ConfigError) as from_child:
        cli.load(args)
    assert str(from_child.value) == str(in_process.value)


def test_help_is_printed_once_by_the_in_process_retry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.load(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.count("usage: wsgid") == 1


def test_version_through_a_real_pipe_is_printed_once() -> None:
    # Unbuffered, the child's own copy of stdout would reach the pipe as well.
    result = subprocess.run(
        [sys.executable, "-m", "wsgid", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert (result.returncode, result.stdout.count("wsgid ")) == (0, 1)


def test_the_settings_are_read_only_and_have_no_other_attribute() -> None:
    settings = cli.load([APP]).settings
    with pytest.raises(AttributeError, match="read-only: cannot assign to 'workers'"):
        settings.workers = 4  # type: ignore[misc]
    # mypy rejects the misspelling (tests/unit/test_settings_typed.py); at run time too:
    with pytest.raises(AttributeError, match="'wrokers'"):
        _ = settings.wrokers  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        object.__setattr__(settings, "wrokers", 4)


def test_a_child_that_does_not_answer_in_time_is_killed_and_the_settings_read_here(
    monkeypatch: pytest.MonkeyPatch, answers: list[Any]
) -> None:
    # A child stuck on a lock another thread held at the fork, as a HUP in a master running
    # a preloaded app's threads could meet.
    def stuck(pipe_fd: int, args: list[str], server: Any) -> NoReturn:
        time.sleep(60)
        os._exit(0)

    monkeypatch.setattr(cli, "_read_settings", stuck)
    monkeypatch.setattr(cli, "CHILD_TIMEOUT", 0.2)
    started = time.monotonic()
    loaded = cli.load([APP, "-w", "3"])
    assert time.monotonic() - started < 30
    assert answers == [None]  # read in-process, into the same type
    assert type(loaded.settings) is RuntimeSettings
    assert loaded.settings.workers == 3
