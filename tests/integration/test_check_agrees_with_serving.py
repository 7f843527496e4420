"""`wsgid check` refuses what serving refuses, with the same exit status and message.

Each case is a configuration a real wsgid refuses at start: the test starts one with it, waits
for its exit, then runs `wsgid check` with the same arguments in the same directory and
environment, and compares the two. A check also leaves nothing behind: no log file, socket or
directory of a configuration that serving would create.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from support.client import poll
from support.load import events
from support.server import WorkDir, WsgidServer, free_port
from wsgid.exitcodes import ExitCode

APP = "soak_app:app"

# A module of hooks that take the wrong number of arguments, and a gunicorn Python config
# defining some: written into the server's working directory (first on its sys.path).
BAD_HOOKS = "def two(server, extra):\n    pass\n\n\ndef none():\n    pass\n"
BAD_CONFIG = "def when_ready(server, extra):\n    pass\n\n\ndef on_starting():\n    pass\n"

# name -> the arguments, given the test's work directory
CASES: dict[str, Callable[[WorkDir], list[str]]] = {
    "post_fork no module": lambda _: ["--post-fork", "nomodule:fn"],
    "post_fork no attribute": lambda _: ["--post-fork", "soak_app:nonexist"],
    "post_fork not an import string": lambda _: ["--post-fork", "garbage"],
    "on_starting not callable": lambda _: ["--on-starting", "soak_app:HELLO"],
    "when_ready arity 2": lambda _: ["--when-ready", "bad_hooks:two"],
    "nworkers_changed arity 0": lambda _: ["--nworkers-changed", "bad_hooks:none"],
    "python config arity": lambda w: ["-c", str(w.root / "bad_conf.py")],
    "unknown user": lambda _: ["--user", "nosuchuser"],
    "unknown group": lambda _: ["--group", "nosuchgroup"],
    "uid without an entry": lambda _: ["--user", "99999"],
    "access log directory": lambda _: ["--access-logfile", "/nonexistent/dir/a.log"],
    "error log directory": lambda _: ["--error-logfile", "/nonexistent/dir/e.log"],
    "logconfig file": lambda _: ["--log-config", "/nonexistent.ini"],
    "logconfig_json file": lambda _: ["--log-config-json", "/nonexistent.json"],
    "logconfig_dict version": lambda _: ["--log-config-dict", '{"version": 2}'],
    "multiprocess dir is a file": lambda w: [
        *("--metrics-bind", f"127.0.0.1:{free_port()}"),
        *("--prometheus-multiproc-dir", str(w.root / "a-file")),
    ],
    "control socket directory": lambda _: ["--control-socket", "/nonexistent/dir/c.sock"],
}


def serving_error(stderr: str) -> str:
    """The message a master that refused to start gave: its `master.start_failed` event, or
    the `wsgid: error:` line of a failure met before the master logs (the logs' own)."""
    failed = events(stderr, "master.start_failed")
    if failed:
        return failed[0].fields["error"]
    lines = [line for line in stderr.splitlines() if line.startswith("wsgid: error: ")]
    assert len(lines) == 1, stderr
    return lines[0].removeprefix("wsgid: error: ")


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_fails_as_serving_does(
    case: str, wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.cwd / "bad_hooks.py").write_text(BAD_HOOKS)
    (workdir.root / "bad_conf.py").write_text(BAD_CONFIG)
    (workdir.root / "a-file").write_text("")
    args = CASES[case](workdir)

    server = wsgid(APP, *args, start=False)
    served = server.wait_exit(60)
    assert served == ExitCode.CONFIG, server.errlog()
    message = serving_error(server.errlog())

    checked = server.check("--bind", f"127.0.0.1:{server.port}", *args)
    assert checked.returncode == served, checked.stderr
    assert checked.stderr == f"wsgid: error: {message}\n"
    assert "configuration OK" not in checked.stdout


def test_arity_errors_name_the_hook_its_source_the_function_and_the_arity(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.root / "bad_conf.py").write_text(BAD_CONFIG)
    server = wsgid(APP, "-c", str(workdir.root / "bad_conf.py"), start=False)
    assert server.wait_exit(60) == ExitCode.CONFIG
    message = serving_error(server.errlog())
    # on_starting comes first in the hooks' order
    assert message.startswith(f"hook on_starting (from file:{workdir.root / 'bad_conf.py'}")
    assert "on_starting()" in message and "an arity of 1" in message, message
    assert "TypeError" not in server.errlog()


def test_a_check_that_passes_creates_nothing(workdir: WorkDir) -> None:
    """Every file and directory serving would make is only checked: the directory stays
    empty (a logging config's FileHandler included)."""
    place = workdir.root / "place"
    place.mkdir()
    handler_log = place / "handler.log"
    logconfig = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(handler_log)}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    args = [
        "--access-logfile", str(place / "access.log"),
        "--error-logfile", str(place / "error.log"),
        "--control-socket", str(place / "control.sock"),
        "--metrics-bind", f"127.0.0.1:{free_port()}",
        "--prometheus-multiproc-dir", str(place / "prom" / "multi"),
        "--log-config-dict", json.dumps(logconfig),
    ]  # fmt: skip
    server = WsgidServer(APP, workdir=workdir)
    checked = server.check(*args)
    assert checked.returncode == ExitCode.OK, checked.stderr
    assert "configuration OK" in checked.stdout
    assert sorted(p.name for p in place.iterdir()) == []


def test_a_check_refuses_a_logconfig_file_handler_that_cannot_open_its_file(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    logconfig = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": "/nonexistent/h.log"}},
        "root": {"handlers": ["file"]},
    }
    args = ["--log-config-dict", json.dumps(logconfig)]
    server = wsgid(APP, *args, start=False)
    assert server.wait_exit(60) == ExitCode.CONFIG
    checked = server.check("--bind", f"127.0.0.1:{server.port}", *args)
    assert checked.returncode == ExitCode.CONFIG, checked.stderr
    assert checked.stderr == f"wsgid: error: {serving_error(server.errlog())}\n"


def test_post_request_may_take_two_arguments_as_in_gunicorn(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """gunicorn accepts post_request(worker, req) and post_request(worker, req, environ)."""
    marker = workdir.markers / "post_request"
    (workdir.cwd / "short_hooks.py").write_text(
        "import os\n\n\n"
        "def post_request(worker, req):\n"
        f"    with open({str(marker)!r}, 'a') as f:\n"
        "        f.write(type(worker).__name__ + '\\n')\n"
    )
    args = ["--post-request", "short_hooks:post_request"]
    server = wsgid(APP, *args, workers=1)
    assert server.check("--bind", f"127.0.0.1:{server.port}", *args).returncode == ExitCode.OK
    assert server.get("/").status == 200
    poll(lambda: marker.exists() and marker.read_text(), 10, what="the post_request hook")
    assert "hook.failed" not in server.errlog()


@pytest.mark.parametrize("value", ["os.path", "nonexistent.module.Class"])
def test_a_worker_class_that_is_no_worker_names_its_source_in_check_and_serving(
    value: str, wsgid: Callable[..., WsgidServer]
) -> None:
    server = wsgid(APP, "-k", value, start=False)
    assert server.wait_exit(60) == ExitCode.CONFIG, server.errlog()
    checked = server.check("-k", value)
    assert checked.returncode == ExitCode.CONFIG, checked.stderr
    for message in (checked.stderr, server.errlog()):
        assert f"worker_class {value!r}" in message and "(worker_class from flag:-k)" in message


def test_check_imports_the_app_as_the_workers_user_as_serving_does(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """An app only root may read: serving with `--user nobody` cannot import it (exit 4),
    and neither can `check`, which imports it as the workers do, as their user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run workers as nobody")
    app_file = workdir.cwd / "root_only_app.py"
    app_file.write_text("def app(environ, start_response):\n    return []\n")
    app_file.chmod(0o600)
    server = wsgid("root_only_app:app", "--user", "nobody", start=False)
    served = server.wait_exit(60)
    assert served == ExitCode.APP_LOAD_FAILED, server.errlog()
    checked = server.check("--user", "nobody")
    assert checked.returncode == ExitCode.APP_LOAD_FAILED, checked.stdout + checked.stderr
    assert "configuration OK" not in checked.stdout
    assert "root_only_app" in checked.stderr, checked.stderr
