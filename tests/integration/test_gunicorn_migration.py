"""gunicorn configurations that ask for a command instead of a server, run by real wsgid
processes: `check_config = True` / `print_config = True` in a Python config file and
`GUNICORN_CMD_ARGS="--check-config"` must exit as gunicorn does, not serve (a CI step that runs
them would otherwise hang), and `protocol = "uwsgi"` must stop wsgid with exit status 2.

Each run is a session of its own, killed whole if it outlives its deadline, so a wsgid that
serves by mistake fails the test and leaves no process behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from support.procs import kill_group
from support.server import scrubbed_environ
from wsgid.exitcodes import ExitCode

APP = "lifecycle_app:app"
# Far above what a check takes (under a second); a server would still be running.
DEADLINE = 30.0


def wsgid(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m wsgid ARGS`, expected to exit by itself before DEADLINE."""
    clean = scrubbed_environ(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsgid", *args, "-b", "127.0.0.1:0"],
        cwd=cwd,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.communicate()
        pytest.fail(f"wsgid {' '.join(args)} was still running after {DEADLINE} s: it served")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_check_config_true_in_a_python_config_checks_and_exits(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("check_config = True\nworkers = 2\n")
    result = wsgid(tmp_path, APP)
    assert result.returncode == ExitCode.OK, result.stderr
    assert f"configuration OK; application {APP} loaded" in result.stdout
    assert "ignored" not in result.stderr


def test_print_config_true_in_a_python_config_prints_and_exits(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("print_config = True\nworkers = 3\n")
    result = wsgid(tmp_path, APP)
    assert result.returncode == ExitCode.OK, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line}
    assert rows["workers"] == "3"


def test_gunicorn_cmd_args_check_config_checks_and_exits(tmp_path: Path) -> None:
    result = wsgid(tmp_path, APP, env={"GUNICORN_CMD_ARGS": "--check-config --workers 2"})
    assert result.returncode == ExitCode.OK, result.stderr
    assert "configuration OK" in result.stdout


def test_protocol_uwsgi_in_a_python_config_stops_wsgid_with_exit_status_2(tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('workers = 2\nprotocol = "uwsgi"\n')
    result = wsgid(tmp_path, APP)
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.startswith(
        f'wsgid: error: Config file {conf}, line 2: protocol = "uwsgi" is refused: wsgid serves'
        " only HTTP"
    )


def test_dotted_hook_string_in_a_python_config_is_imported_by_wsgid_check(tmp_path: Path) -> None:
    (tmp_path / "migration_hooks.py").write_text("def ready(server):\n    pass\n")
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('when_ready = "migration_hooks.ready"\n')
    result = wsgid(tmp_path, "check", APP)
    assert result.returncode == ExitCode.OK, result.stderr
    conf.write_text('when_ready = "migration_hooks_missing.ready"\n')
    result = wsgid(tmp_path, "check", APP)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "hook when_ready (from file:" in result.stderr
    assert "no module named 'migration_hooks_missing'" in result.stderr
