"""Paste Deploy in the settings and the loader, in-process.

- `paste` (`--paste`/`--paster`, WSGID_PASTE, the file): FILE[#NAME] made absolute; a
  missing or broken file reported against its source; exclusive with `app`;
- `raw_paste_global_conf`: the same table from a repeated `--paste-global`, a TOML table,
  gunicorn's list of KEY=VALUE strings and the environment;
- a [loggers] section becomes `logconfig`, with the paste file as its source, unless
  logconfig is set; `%(here)s` works in any logconfig file;
- a pserve server section (`ServerSection`): host/port make bind, `config` names the TOML
  file, values are validated by the model and reported with the section's key, unknown keys
  get a did-you-mean, and the application cannot be named again;
- the loader: a paste file's app, and a clear error without PasteDeploy.

tests/integration/test_paste.py serves the same through real processes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from support.settings import error_of, load
from wsgid import logs
from wsgid.loader import AppLoadError, load_app
from wsgid.logs import stdlib
from wsgid.paste import ServerSection
from wsgid.runtime import RuntimeSettings
from wsgid.settings import ConfigError, LoadedSettings, Settings, load_settings

APP_INI = """\
[app:main]
use = call:paste_unit_app:main
name = main

[app:admin]
use = call:paste_unit_app:main
name = admin
"""

LOGGERS = """\
[loggers]
keys = root

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = file

[handler_file]
class = FileHandler
args = ('%(here)s/app.log',)
formatter = plain

[formatter_plain]
format = HERE %(message)s
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with development.ini and the module its apps come from."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "development.ini").write_text(APP_INI)
    (tmp_path / "paste_unit_app.py").write_text(
        "def main(global_config, **settings):\n"
        "    def app(environ, start_response):\n"
        "        return [settings['name'].encode(), global_config.get('who', '').encode()]\n"
        "    return app\n"
    )
    saved_path, before = list(sys.path), set(sys.modules)
    yield tmp_path
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if name == "paste_unit_app":
            del sys.modules[name]


# --- paste ------------------------------------------------------------------------------


def test_paste_path_is_made_absolute_and_keeps_its_name(project: Path) -> None:
    for flag in ("--paste", "--paster"):
        loaded = load([flag, "development.ini#admin"])
        assert loaded.settings.paste == f"{project}/development.ini#admin"
        assert loaded.sources["paste"] == f"flag:{flag}"
    assert load([], {"WSGID_PASTE": "development.ini"}).settings.paste == str(
        project / "development.ini"
    )
    assert "the section name after # is empty" in error_of(["--paste", "development.ini#"])


def test_paste_and_app_together_is_a_clear_error(project: Path) -> None:
    message = error_of(["pkg.mod:app", "--paste", "development.ini"])
    assert message == (
        "The combined configuration is not valid: app and paste are both set, and each names"
        " the application to serve; keep app for a MODULE:CALLABLE, or paste for a Paste"
        " Deploy file (app from flag:APP, paste from flag:--paste)."
    )


def test_paste_alone_is_an_application(project: Path) -> None:
    assert load(["check", "--paste", "development.ini"]).command == "check"
    assert "--paste FILE.ini" in error_of([])


def test_paste_file_missing_or_broken_is_reported_against_its_source(project: Path) -> None:
    message = error_of(["--paste", "missing.ini"])
    assert message == (
        f'Command-line flag --paste "missing.ini": the file {project}/missing.ini does not exist.'
    )
    (project / "broken.ini").write_text("no section header\n")
    message = error_of([], {"WSGID_PASTE": "broken.ini"})
    assert message.startswith(
        f'Environment variable WSGID_PASTE="broken.ini": {project}/broken.ini is not an ini'
        " file: File contains no section headers."
    )


# --- raw_paste_global_conf ----------------------------------------------------------------


def test_paste_globals_from_every_source_are_one_table(project: Path) -> None:
    want = {"who": "world", "db": "pg://h/x"}
    flags = ["--paste-global", "who=world", "--paste-global", "db=pg://h/x"]
    assert load(["--paste", "development.ini", *flags]).settings.raw_paste_global_conf == want
    toml = project / "wsgid.toml"
    toml.write_text('paste = "development.ini"\n[raw_paste_global_conf]\nwho = "world"\n'
                    'db = "pg://h/x"\n')  # fmt: skip
    assert load(["-c", str(toml)]).settings.raw_paste_global_conf == want
    toml.write_text("[application]\nraw_paste_global_conf = { n = 3, debug = true }\n")
    settings = load(["-c", str(toml), "--paste", "development.ini"]).settings
    assert settings.raw_paste_global_conf == {"n": "3", "debug": "true"}
    # gunicorn's form, as a gunicorn config file writes it: a list of KEY=VALUE strings.
    toml.write_text('raw_paste_global_conf = ["who=world", "db=pg://h/x"]\n')
    settings = load(["-c", str(toml), "--paste", "development.ini"]).settings
    assert settings.raw_paste_global_conf == want
    env = {
        "WSGID_RAW_PASTE_GLOBAL_CONF": "who=world, db=pg://h/x",
        "WSGID_PASTE": "development.ini",
    }
    assert load([], env).settings.raw_paste_global_conf == want
    env["WSGID_RAW_PASTE_GLOBAL_CONF"] = '{"who": "world", "db": "pg://h/x"}'
    assert load([], env).settings.raw_paste_global_conf == want
    message = error_of(["--paste", "development.ini", "--paste-global", "novalue"])
    assert message.startswith('Command-line flag --paste-global "novalue" is not valid:')
    assert "'novalue' is not of the form KEY=VALUE" in message


# --- [loggers] -----------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Keep the stdlib logging state a logging config changes from leaking into other tests."""
    root = logging.getLogger()
    handlers, level, last = list(root.handlers), root.level, logging.lastResort
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.lastResort = last
    stdlib.set_error_log(None)


def test_paste_loggers_become_logconfig_with_the_file_as_source(project: Path) -> None:
    ini = project / "development.ini"
    assert load(["--paste", "development.ini"]).settings.logconfig is None  # no [loggers]
    ini.write_text(APP_INI + LOGGERS)
    loaded = load(["--paste", "development.ini#admin"])
    assert loaded.settings.logconfig == str(ini)
    assert loaded.sources["logconfig"] == f"paste:{ini} [loggers]"
    other = project / "logging.ini"
    other.write_text(LOGGERS)
    loaded = load(["--paste", "development.ini", "--log-config", str(other)])
    assert loaded.settings.logconfig == str(other)
    assert loaded.sources["logconfig"] == "flag:--log-config"


def test_logconfig_here_is_the_files_directory_and_unhandled_records_still_reach_wsgid(
    project: Path, restore_logging: None
) -> None:
    ini = project / "development.ini"
    ini.write_text(APP_INI + LOGGERS)
    error_log = project / "error.log"
    settings = load(["--paste", "development.ini", "--error-logfile", str(error_log)]).settings
    built = logs.setup(settings)
    try:
        logging.getLogger("unit.paste").warning("through the ini")
        assert (project / "app.log").read_text() == "HERE through the ini\n"
        assert isinstance(logging.lastResort, stdlib.StdlibHandler)
        built.error.error("wsgid.event")
        assert "wsgid.event" in error_log.read_text()
    finally:
        built.close()


# --- the server section of pserve -------------------------------------------------------------


def served(conf: Mapping[str, str], env: Mapping[str, str] | None = None) -> LoadedSettings:
    return load_settings([], env or {}, ServerSection("/srv/site/dev.ini", "[server:main]", conf))


def served_error(conf: Mapping[str, str], env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        served(conf, env)
    return str(info.value)


def test_server_section_keys_are_settings_with_the_section_as_source() -> None:
    loaded = served({"workers": "3", "threads": "2", "preload_app": "true", "accesslog": "-"})
    settings = loaded.settings
    assert (settings.workers, settings.threads, settings.accesslog) == (3, 2, "-")
    assert settings.app is None and settings.paste is None  # the app is pserve's
    assert loaded.sources["workers"] == "paste:/srv/site/dev.ini [server:main]"
    assert loaded.sources["timeout"] == "default"


def test_server_section_host_and_port_make_bind() -> None:
    assert served({"host": "0.0.0.0", "port": "6543"}).settings.bind == ("0.0.0.0:6543",)
    both = served({"host": "127.0.0.1, ::1", "port": "6543"}).settings.bind
    assert both == ("127.0.0.1:6543", "[::1]:6543")
    assert served({"host": "10.0.0.1:81,10.0.0.2"}).settings.bind == (
        "10.0.0.1:81",
        "10.0.0.2:8000",
    )
    assert served({"port": "6543"}).settings.bind == ("127.0.0.1:6543",)
    assert served({"bind": "unix:/run/site.sock"}).settings.bind == ("unix:/run/site.sock",)
    assert "sets both bind and host/port" in served_error({"bind": "a:1", "port": "2"})


def test_server_section_bad_value_names_the_section_and_key() -> None:
    assert served_error({"workers": "four"}) == (
        '/srv/site/dev.ini: paste [server:main] key "workers" = "four" is not valid: input'
        " should be a valid integer, unable to parse string as an integer. Accepted for"
        " workers: an integer from 1 to 4096."
    )


def test_server_section_unknown_key_is_a_clear_error_with_a_did_you_mean() -> None:
    assert served_error({"wrokers": "2"}) == (
        '/srv/site/dev.ini: paste [server:main]: key "wrokers" is not a wsgid setting. Did you'
        ' mean "workers"? The keys of the section are host, port, config (a wsgid TOML file)'
        " and wsgid's settings, listed by `wsgid --help` and in docs/configuration.md."
    )
    assert 'Did you mean "port"?' in served_error({"prot": "6543"})
    assert 'Did you mean "keepalive"?' in served_error({"keep_alive": "5"})


def test_server_section_cannot_name_another_application(tmp_path: Path) -> None:
    assert "remove app from the server section" in served_error({"app": "pkg:app"})
    message = served_error({}, {"WSGID_APP": "pkg:app"})
    assert message == (
        'Environment variable WSGID_APP="pkg:app" names an application, but wsgid runs under'
        " pserve here and serves the one of /srv/site/dev.ini; remove app."
    )


def test_server_section_refuses_reload_which_pserve_does_instead() -> None:
    """pserve built the application before wsgid started: wsgid's reload would start new
    workers with the old code (and say reload.done)."""
    message = served_error({"reload": "true"})
    assert message.startswith('/srv/site/dev.ini: paste [server:main] key "reload" = "true"')
    assert "pserve --reload" in message
    assert "pserve --reload" in served_error({}, {"WSGID_RELOAD": "1"})
    assert served({"reload": "False"}).settings.reload is False


def test_server_section_config_names_the_toml_file_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    toml = tmp_path / "wsgid.toml"
    toml.write_text("workers = 5\ntimeout = 7\nbacklog = 9\n")
    loaded = served({"config": str(toml), "timeout": "8", "backlog": "10"}, {"WSGID_BACKLOG": "11"})
    settings = loaded.settings
    assert (settings.workers, settings.timeout, settings.backlog) == (5, 8.0, 11)
    assert loaded.sources["workers"] == f"file:{toml}"
    assert loaded.sources["timeout"] == "paste:/srv/site/dev.ini [server:main]"


# --- the loader --------------------------------------------------------------------------------


def paste_settings(spec: str, **globals_: str) -> RuntimeSettings:
    return RuntimeSettings.copy_of(Settings()).replace(
        paste=spec,
        raw_paste_global_conf=globals_,
    )


def body(app: object) -> list[bytes]:
    assert callable(app)
    return list(app({}, lambda *a: None))


def test_loader_loads_the_named_section_with_the_global_variables(project: Path) -> None:
    ini = str(project / "development.ini")
    assert body(load_app(paste_settings(ini, who="me"))) == [b"main", b"me"]
    assert body(load_app(paste_settings(f"{ini}#admin"))) == [b"admin", b""]
    with pytest.raises(AppLoadError) as info:
        load_app(paste_settings(f"{ini}#nothere"))
    assert str(info.value).startswith(f"paste '{ini}#nothere': No section 'nothere'")


def test_loader_without_pastedeploy_names_the_package(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "paste.deploy", None)
    with pytest.raises(AppLoadError) as info:
        load_app(paste_settings(str(project / "development.ini")))
    assert "needs the PasteDeploy package, which is not installed" in str(info.value)
