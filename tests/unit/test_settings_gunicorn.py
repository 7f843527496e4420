"""gunicorn 20.1's remaining settings as wsgid reads them (issue 18, "The remaining settings").

`wsgi_app` is `app` under gunicorn's name; `strip_header_spaces` is refused by name with its
reason; `logger_class` accepts gunicorn's default only; `worker_tmp_dir` and
`tmp_upload_dir` are accepted and change nothing; the flags of `sendfile`, `reuse_port`,
`spew`, `initgroups` and `enable_stdio_inheritance` are gunicorn's; a gunicorn setting wsgid
does not have is reported with why, in every source, never with a near-miss did-you-mean;
gunicorn's worker classes are read as the wsgid kinds of the same names, and ASGI worker
classes are refused as such; a hook may be gunicorn's dotted MODULE.FUNCTION. What each
does in a
running server is tested with real processes (tests/integration/test_gunicorn_settings.py,
tests/system/test_privileges.py, tests/system/test_daemon.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from support.settings import APP, error_of, load
from wsgid.settings import (
    Settings,
    file_json_schema,
    import_python_config,
)
from wsgid.settings.pyfile import GUNICORN_SETTINGS
from wsgid.settings.specs import COMMAND_SETTINGS, GUNICORN_ONLY, REFUSED, RENAMED, SPECS


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "app.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- wsgi_app ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ['wsgi_app = "a.b:c"\n', '[application]\nwsgi_app = "a.b:c"\n'])
def test_wsgi_app_in_the_file_is_the_app(tmp_path: Path, text: str) -> None:
    path = config(tmp_path, text)
    loaded = load(["-c", path])
    assert loaded.settings.app == "a.b:c"
    assert loaded.sources["app"] == f"file:{path}"


def test_wsgi_app_in_the_environment_is_the_app() -> None:
    loaded = load([], {"WSGID_WSGI_APP": "a.b:c"})
    assert (loaded.settings.app, loaded.sources["app"]) == ("a.b:c", "env:WSGID_WSGI_APP")


def test_the_app_argument_wins_over_wsgi_app_in_the_file_as_in_gunicorn(tmp_path: Path) -> None:
    path = config(tmp_path, 'wsgi_app = "from.file:app"\n')
    loaded = load(["-c", path, "from.argv:app"])
    assert (loaded.settings.app, loaded.sources["app"]) == ("from.argv:app", "flag:APP")


def test_wsgi_app_and_app_in_one_file_are_refused(tmp_path: Path) -> None:
    path = config(tmp_path, 'app = "a:b"\n[application]\nwsgi_app = "c:d"\n')
    message = error_of(["-c", path])
    assert '"app" and "wsgi_app" are both set' in message
    assert "wsgi_app is gunicorn's name for app" in message


def test_wsgi_app_and_app_in_the_environment_are_refused() -> None:
    message = error_of([], {"WSGID_APP": "a:b", "WSGID_WSGI_APP": "c:d"})
    assert "WSGID_WSGI_APP and WSGID_APP are both set" in message


def test_a_bad_wsgi_app_is_reported_under_the_name_the_file_gave(tmp_path: Path) -> None:
    path = config(tmp_path, "\n\nwsgi_app = 3\n")
    message = error_of(["-c", path])
    assert f"Config file {path}, line 3: wsgi_app = 3 is not valid" in message


def test_the_schema_accepts_wsgi_app_as_the_app() -> None:
    schema = file_json_schema()
    assert schema["properties"]["wsgi_app"] == {"$ref": "#/$defs/app"}
    table = schema["properties"]["application"]["properties"]
    assert table["wsgi_app"] == {"$ref": "#/$defs/app"}


# --- strip_header_spaces -------------------------------------------------------------------------


def test_strip_header_spaces_in_the_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = config(tmp_path, "workers = 2\nstrip_header_spaces = false\n")
    message = error_of(["-c", path])
    assert message.startswith(f'Config file {path}, line 2: "strip_header_spaces" is refused')
    assert "smuggle" in message and "Host : x" in message and "remove the setting" in message


def test_strip_header_spaces_flag_is_refused_with_its_reason() -> None:
    message = error_of([APP, "--strip-header-spaces"])
    assert message.startswith("Command-line flag --strip-header-spaces is refused")
    assert "smuggle" in message


def test_strip_header_spaces_variable_is_refused_with_its_reason() -> None:
    message = error_of([APP], {"WSGID_STRIP_HEADER_SPACES": "true"})
    assert message.startswith("Environment variable WSGID_STRIP_HEADER_SPACES is refused")


# --- logger_class --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["gunicorn.glogging.Logger", "simple", "gunicorn.instrument.statsd.Statsd"]
)
def test_logger_class_accepts_gunicorns_default_and_its_statsd_logger(value: str) -> None:
    assert load([APP, "--logger-class", value]).settings.logger_class == value


def test_a_custom_logger_class_is_refused_naming_what_does_its_job() -> None:
    message = error_of([APP, "--logger-class", "myapp.logging.JsonLogger"])
    assert "myapp.logging.JsonLogger" in message
    assert "log_format" in message and "logconfig_dict" in message and "gunicorn.access" in message


def test_a_logger_class_given_as_a_class_is_judged_by_its_path() -> None:
    """A gunicorn Python configuration file may name the class object itself."""

    class JsonLogger:
        pass

    with pytest.raises(ValidationError, match=r"test_settings_gunicorn\..*JsonLogger"):
        Settings.model_validate({"logger_class": JsonLogger})


def test_gunicorns_statsd_settings_are_read_under_their_names_and_flags() -> None:
    settings = load(
        [APP, "--statsd-host", "localhost", "--statsd-prefix", "web", "--dogstatsd-tags",
         "env:prod", "--enable-backlog-metric"]
    ).settings  # fmt: skip
    assert settings.statsd_host == "localhost:8125"
    assert (settings.statsd_prefix, settings.dogstatsd_tags) == ("web", "env:prod")
    assert settings.enable_backlog_metric and settings.statsd_naming == "gunicorn"
    message = error_of([APP, "--statsd-host", "localhost:http"])
    assert "statsd_host" in message and "unix:PATH" in message


# --- accepted without effect, and the flags ------------------------------------------------------


def test_worker_tmp_dir_and_tmp_upload_dir_are_accepted(tmp_path: Path) -> None:
    path = config(tmp_path, 'worker_tmp_dir = "/dev/shm"\ntmp_upload_dir = "/tmp"\n')
    settings = load(["-c", path, APP]).settings
    assert (settings.worker_tmp_dir, settings.tmp_upload_dir) == ("/dev/shm", "/tmp")
    assert load([APP, "--worker-tmp-dir", "/dev/shm"]).settings.worker_tmp_dir == "/dev/shm"
    assert load([APP, "--tmp-upload-dir", "/tmp"]).settings.tmp_upload_dir == "/tmp"


def test_gunicorns_flags_of_the_remaining_settings() -> None:
    defaults = load().settings
    assert (defaults.sendfile, defaults.reuse_port, defaults.spew) == (True, False, False)
    assert (defaults.initgroups, defaults.enable_stdio_inheritance) == (False, False)
    assert defaults.default_proc_name is None
    argv = [APP, "--no-sendfile", "--reuse-port", "--spew", "--initgroups", "-R"]
    settings = load(argv).settings
    assert (settings.sendfile, settings.reuse_port, settings.spew) == (False, True, True)
    assert (settings.initgroups, settings.enable_stdio_inheritance) == (True, True)
    assert load([APP, "--enable-stdio-inheritance"]).settings.enable_stdio_inheritance


def test_default_proc_name_comes_from_the_file_or_its_flag(tmp_path: Path) -> None:
    path = config(tmp_path, 'default_proc_name = "shop"\n')
    assert load(["-c", path, APP]).settings.default_proc_name == "shop"
    assert load([APP, "--default-proc-name", "shop"]).settings.default_proc_name == "shop"


# --- gunicorn settings wsgid does not have -------------------------------------------------------

LACKS = "is a gunicorn setting wsgid does not have (docs/gunicorn.md)"


def test_gunicorn_only_table_covers_every_gunicorn_setting_wsgid_lacks() -> None:
    """One reason per setting wsgid lacks, in the one table every source reads."""
    lacking = GUNICORN_SETTINGS - set(SPECS) - set(RENAMED) - set(COMMAND_SETTINGS) - set(REFUSED)
    assert set(GUNICORN_ONLY) == lacking
    assert all(reason and not reason.endswith(".") for reason in GUNICORN_ONLY.values())


@pytest.mark.parametrize(
    "flag, name, reason",
    [
        ("--protocol", "protocol", "uwsgi_pass"),
        ("--dirty-app", "dirty_apps", "task queue"),
        ("--http-parser", "http_parser", "llhttp"),
        ("--root-path", "root_path", "SCRIPT_NAME"),
        ("--uwsgi-allow-from", "uwsgi_allow_ips", "uwsgi protocol"),
        ("--tolerate-dangerous-framing", "tolerate_dangerous_framing", "400"),
    ],
)
def test_gunicorn_only_flag_says_wsgid_lacks_it_instead_of_a_near_miss(
    flag: str, name: str, reason: str
) -> None:
    message = error_of([APP, flag, "x"])
    assert message.startswith(f"Command-line flag {flag}: {name} {LACKS}: "), message
    assert reason in message and "Did you mean" not in message
    env = error_of([APP], {"GUNICORN_CMD_ARGS": f"{flag} x"})
    assert env.startswith(f"Environment variable GUNICORN_CMD_ARGS: {flag}: {name} {LACKS}")


def test_gunicorn_only_key_and_variable_say_wsgid_lacks_them(tmp_path: Path) -> None:
    path = config(tmp_path, 'workers = 2\n[server]\nprotocol = "uwsgi"\n')
    message = error_of(["-c", path, APP])
    assert message.startswith(f"Config file {path}, line 3: protocol {LACKS}: "), message
    assert "proxy_pass" in message and "Did you mean" not in message
    top = config(tmp_path, "http_parser = 'fast'\n")
    assert f"line 1: http_parser {LACKS}: wsgid has one HTTP parser" in error_of(["-c", top, APP])
    variable = error_of([APP], {"WSGID_ROOT_PATH": "/api"})
    assert variable.startswith(f"Environment variable WSGID_ROOT_PATH: root_path {LACKS}")


def test_gunicorn_only_in_a_python_config_warns_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("workers = 2\nasgi_loop = 'uvloop'\n")
    (warning,) = load([APP, "-c", str(path)]).warnings
    reason = GUNICORN_ONLY["asgi_loop"]
    assert warning == f"Config file {path}, line 2: asgi_loop {LACKS}: {reason}; it is ignored."


def test_config_import_lists_check_config_as_a_command_not_a_missing_setting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("check_config = False\nprint_config = False\ndirty_workers = 2\n")
    text = import_python_config(str(path), "the command line")
    missing, _, commands = text.partition("# gunicorn settings that are wsgid commands")
    assert "dirty_workers = 2: gunicorn's dirty workers are out of scope" in missing
    assert "check_config" not in missing and "print_config" not in missing
    assert "check_config = False: `wsgid check`" in commands
    assert "print_config = False: `wsgid config show`" in commands


# --- worker classes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, kind",
    [
        ("gunicorn.workers.sync.SyncWorker", "sync"),
        ("gunicorn.workers.gthread.ThreadWorker", "gthread"),
        ("gunicorn.workers.ggevent.GeventWorker", "gevent"),
        ("gunicorn.workers.geventlet.EventletWorker", "eventlet"),
        ("gunicorn.workers.gtornado.TornadoWorker", "tornado"),
        ("egg:gunicorn#gevent", "gevent"),
        ("egg:gunicorn#sync", "sync"),
        ("egg:gunicorn#eventlet", "eventlet"),
        ("egg:gunicorn#gthread", "gthread"),
        ("egg:gunicorn#tornado", "tornado"),
        # gunicorn's gevent worker on gevent's pywsgi server, under each of its names
        ("gunicorn.workers.ggevent.GeventPyWSGIWorker", "gevent"),
        ("gevent_pywsgi", "gevent"),
        ("gevent_wsgi", "gevent"),
        ("egg:gunicorn#gevent_pywsgi", "gevent"),
        ("egg:gunicorn#gevent_wsgi", "gevent"),
        ("#gevent_pywsgi", "gevent"),
    ],
)
def test_gunicorn_worker_class_is_read_as_the_wsgid_kind_of_its_name(
    tmp_path: Path, given: str, kind: str
) -> None:
    assert load([APP, "-k", given]).settings.worker_class == kind
    path = config(tmp_path, f'worker_class = "{given}"\n')
    assert load(["-c", path, APP]).settings.worker_class == kind
    assert load([APP], {"WSGID_WORKER_CLASS": given}).settings.worker_class == kind


@pytest.mark.parametrize(
    "given",
    [
        "uvicorn.workers.UvicornWorker",
        "uvicorn.workers.UvicornH11Worker",
        "uvicorn_worker.UvicornWorker",
        "asgi",
        "egg:gunicorn#asgi",
        "gunicorn.workers.gasgi.ASGIWorker",
    ],
)
def test_asgi_worker_class_is_refused_saying_wsgid_serves_wsgi_only(given: str) -> None:
    message = error_of([APP, "-k", given])
    assert f"{given!r} is a worker class of ASGI applications" in message, message
    assert "wsgid serves WSGI only" in message and "ASGI server" in message


# --- hooks as gunicorn's dotted strings ----------------------------------------------------------


def test_dotted_hook_string_is_read_as_module_and_function_from_every_source(
    tmp_path: Path,
) -> None:
    """gunicorn's validate_callable takes "pkg.mod.func", split at the last dot."""
    assert load([APP, "--on-starting", "pkg.mod.start"]).settings.on_starting == "pkg.mod:start"
    env = {"WSGID_POST_FORK": "hooks.post_fork"}
    assert load([APP], env).settings.post_fork == "hooks:post_fork"
    toml = config(tmp_path, '[hooks]\nwhen_ready = "hooks.ready"\n')
    assert load(["-c", toml, APP]).settings.when_ready == "hooks:ready"
    python = tmp_path / "gunicorn.conf.py"
    python.write_text('on_exit = "hooks.bye"\n')
    assert load([APP, "-c", str(python)]).settings.on_exit == "hooks:bye"
    cmd_args = {"GUNICORN_CMD_ARGS": "--pre-fork hooks.fork"}
    assert load([APP], cmd_args).settings.pre_fork == "hooks:fork"
    # The colon form is kept as written, a factory call included.
    assert load([APP, "--on-exit", "a.b:make(1.5)"]).settings.on_exit == "a.b:make(1.5)"


def test_dotted_hook_string_without_a_dot_is_refused_naming_both_forms() -> None:
    message = error_of([APP, "--on-starting", "start"])
    assert message.startswith('Command-line flag --on-starting "start" is not valid'), message
    assert "MODULE:FUNCTION or MODULE.FUNCTION" in message
