"""The settings model and `load_settings`: sources, precedence, validation and error messages.

In-process tests of `wsgid.settings`; tests/integration/test_config_cli.py proves the same
behaviour through a real `wsgid` process.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from support.settings import APP, error_of, load
from wsgid.settings import SPECS, TABLES, ConfigError, Settings, load_settings


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- the model ---------------------------------------------------------------------------


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.workers = 4


def test_settings_reject_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"workres": 4})


def test_every_field_has_option_metadata_in_a_known_group() -> None:
    assert set(SPECS) == set(Settings.model_fields)
    for spec in SPECS.values():
        assert spec.description, f"{spec.name} has no help text"
        assert spec.flags or spec.option.positional, f"{spec.name} has no flag"


def test_contract_fields_have_their_documented_defaults() -> None:
    s = Settings()
    assert (s.app, s.config, s.bind, s.backlog, s.workers) == (
        None,
        None,
        ("127.0.0.1:8000",),
        2048,
        1,
    )
    assert (s.worker_class, s.threads, s.worker_connections) == ("sync", 1, 1000)
    assert (s.timeout, s.graceful_timeout, s.keepalive) == (30, 30, 2)
    assert (s.max_requests, s.max_requests_jitter, s.preload_app) == (0, 0, False)
    assert (s.chdir, s.pythonpath, s.raw_env, s.proc_name) == (None, (), (), None)
    assert (s.limit_request_line, s.limit_request_fields, s.limit_request_field_size) == (
        4094,
        100,
        8190,
    )
    assert (s.loglevel, s.errorlog, s.accesslog) == ("info", "-", None)
    assert (s.user, s.group, s.umask, s.pidfile, s.daemon) == (None, None, 0, None, False)


def test_table_names_never_shadow_a_setting_except_workers() -> None:
    # `workers` is deliberately both; any other clash would make a flat key unusable.
    assert set(TABLES) & set(SPECS) == {"workers"}


# --- defaults from the platform -------------------------------------------------------------


def test_nothing_given_means_every_source_is_default() -> None:
    loaded = load()
    assert loaded.settings.bind == ("127.0.0.1:8000",)
    assert {n: s for n, s in loaded.sources.items() if s != "default"} == {"app": "flag:APP"}


def test_port_variable_makes_default_bind_all_interfaces_on_that_port() -> None:
    loaded = load(env={"PORT": "5000"})
    assert loaded.settings.bind == ("0.0.0.0:5000",)
    assert loaded.sources["bind"] == "default"


def test_web_concurrency_sets_default_workers() -> None:
    assert load(env={"WEB_CONCURRENCY": "3"}).settings.workers == 3


def test_file_overrides_port_and_web_concurrency_defaults(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'bind = ["127.0.0.1:9"]\nworkers = 2\n')
    loaded = load([APP, "-c", cfg], {"PORT": "5000", "WEB_CONCURRENCY": "7"})
    assert (loaded.settings.bind, loaded.settings.workers) == (("127.0.0.1:9",), 2)


@pytest.mark.parametrize(
    ("var", "value"), [("PORT", "http"), ("PORT", "70000"), ("WEB_CONCURRENCY", "0")]
)
def test_bad_platform_variable_is_named_in_the_error(var: str, value: str) -> None:
    message = error_of(env={var: value})
    assert f'{var}="{value}"' in message


# --- precedence -------------------------------------------------------------------------------


def test_file_beats_default(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[workers]\ntimeout = 12\n")
    loaded = load([APP, "-c", cfg])
    assert loaded.settings.timeout == 12
    assert loaded.sources["timeout"] == f"file:{cfg}"


def test_env_beats_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "timeout = 12\n")
    loaded = load([APP, "-c", cfg], {"WSGID_TIMEOUT": "13"})
    assert (loaded.settings.timeout, loaded.sources["timeout"]) == (13, "env:WSGID_TIMEOUT")


def test_flag_beats_env() -> None:
    loaded = load([APP, "-t", "14"], {"WSGID_TIMEOUT": "13"})
    assert (loaded.settings.timeout, loaded.sources["timeout"]) == (14, "flag:-t")


def test_flag_beats_file_and_replaces_a_list_whole(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'bind = ["127.0.0.1:1", "127.0.0.1:2"]\n')
    loaded = load([APP, "-c", cfg, "--bind", "127.0.0.1:3"])
    assert loaded.settings.bind == ("127.0.0.1:3",)
    assert loaded.sources["bind"] == "flag:--bind"


def test_negative_boolean_flag_turns_off_what_the_environment_turned_on() -> None:
    loaded = load([APP, "--no-preload"], {"WSGID_PRELOAD_APP": "yes"})
    assert loaded.settings.preload_app is False
    assert loaded.sources["preload_app"] == "flag:--no-preload"


def test_config_flag_beats_wsgid_config_variable(tmp_path: Path) -> None:
    by_env = write(tmp_path / "env.toml", "workers = 2\n")
    by_flag = write(tmp_path / "flag.toml", "workers = 3\n")
    loaded = load([APP, "-c", by_flag], {"WSGID_CONFIG": by_env})
    assert loaded.settings.workers == 3
    assert loaded.settings.config == by_flag


def test_config_path_is_made_absolute_so_a_reload_after_chdir_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "rel.toml", "workers = 2\n")
    monkeypatch.chdir(tmp_path)
    loaded = load([APP], {"WSGID_CONFIG": "rel.toml"})
    assert loaded.settings.config == os.path.join(str(tmp_path), "rel.toml")
    assert loaded.sources["config"] == "env:WSGID_CONFIG"


# --- gunicorn compatibility ----------------------------------------------------------------


def test_a_gunicorn_command_line_parses_unchanged() -> None:
    argv = shlex.split(
        "myproject.wsgi:application -b 0.0.0.0:8000 -b [::1]:8001 -w 4 -k gthread --threads 8 "
        "--worker-connections 500 -t 60 --graceful-timeout 20 --keep-alive 5 "
        "--max-requests 1000 --max-requests-jitter 50 --preload --chdir /tmp "
        "--pythonpath /srv/a,/srv/b -e A=1 -e B=2 -n myproj --limit-request-line 8190 "
        "--limit-request-fields 50 --limit-request-field_size 4096 --log-level warning "
        "--error-logfile /var/log/err.log --access-logfile - -u www-data -g www-data "
        "-m 007 -p /run/app.pid -D"
    )
    s = load(argv).settings
    assert s.app == "myproject.wsgi:application"
    assert s.bind == ("0.0.0.0:8000", "[::1]:8001")
    assert (s.workers, s.worker_class, s.threads, s.worker_connections) == (4, "gthread", 8, 500)
    assert (s.timeout, s.graceful_timeout, s.keepalive) == (60, 20, 5)
    assert (s.max_requests, s.max_requests_jitter, s.preload_app) == (1000, 50, True)
    assert (s.chdir, s.pythonpath, s.raw_env) == ("/tmp", ("/srv/a", "/srv/b"), ("A=1", "B=2"))
    assert (s.proc_name, s.limit_request_line, s.limit_request_fields) == ("myproj", 8190, 50)
    assert (s.limit_request_field_size, s.loglevel) == (4096, "warning")
    assert (s.errorlog, s.accesslog, s.user, s.group) == (
        "/var/log/err.log",
        "-",
        "www-data",
        "www-data",
    )
    assert (s.umask, s.pidfile, s.daemon) == (0o007, "/run/app.pid", True)


def test_limit_request_field_size_flag_accepts_the_dashed_spelling_too() -> None:
    assert load([APP, "--limit-request-field-size", "100"]).settings.limit_request_field_size == 100


def test_log_file_is_an_alias_of_error_logfile() -> None:
    loaded = load([APP, "--log-file", "/tmp/e.log"])
    assert (loaded.settings.errorlog, loaded.sources["errorlog"]) == (
        "/tmp/e.log",
        "flag:--log-file",
    )


@pytest.mark.parametrize(
    ("text", "mask"), [("022", 0o22), ("0o22", 0o22), ("0", 0), ("18", 18), ("0x12", 0x12)]
)
def test_umask_is_read_like_gunicorn_with_a_leading_zero_meaning_octal(
    text: str, mask: int
) -> None:
    assert load([APP, "-m", text]).settings.umask == mask


def test_umask_in_the_file_may_be_an_octal_integer_or_a_string(tmp_path: Path) -> None:
    assert load([APP, "-c", write(tmp_path / "a.toml", "umask = 0o027\n")]).settings.umask == 0o27
    assert load([APP, "-c", write(tmp_path / "b.toml", 'umask = "027"\n')]).settings.umask == 0o27


@pytest.mark.parametrize("text", ["rwx", "0o1000", "-1"])
def test_bad_umask_is_rejected(text: str) -> None:
    assert "-m" in error_of([APP, "-m", text])


# --- environment values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_env_values(text: str, value: bool) -> None:
    assert load(env={"WSGID_DAEMON": text}).settings.daemon is value


def test_lists_in_env_are_comma_separated() -> None:
    loaded = load(env={"WSGID_BIND": "127.0.0.1:1, unix:/tmp/x.sock", "WSGID_RAW_ENV": "A=1,B=2"})
    assert loaded.settings.bind == ("127.0.0.1:1", "unix:/tmp/x.sock")
    assert loaded.settings.raw_env == ("A=1", "B=2")


def test_an_empty_env_variable_unsets_an_optional_setting(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'accesslog = "-"\n')
    loaded = load([APP, "-c", cfg], {"WSGID_ACCESSLOG": ""})
    assert loaded.settings.accesslog is None


def test_reserved_double_underscore_variables_are_not_settings() -> None:
    assert load(env={"WSGID__UPGRADE_FDS": "3,4"}).settings == load().settings


def test_log_level_is_case_insensitive() -> None:
    assert load(env={"WSGID_LOGLEVEL": "WARNING"}).settings.loglevel == "warning"


def test_log_level_warn_is_warning_in_every_source_as_gunicorn_users_write_it(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('loglevel = "warn"\n')
    toml = tmp_path / "c.toml"
    toml.write_text('loglevel = "Warn"\n')
    assert load([APP, "-c", str(conf)]).settings.loglevel == "warning"
    assert load([APP, "-c", str(toml)]).settings.loglevel == "warning"
    assert load([APP, "--log-level", "WARN"]).settings.loglevel == "warning"
    assert load(env={"GUNICORN_CMD_ARGS": "--log-level warn"}).settings.loglevel == "warning"


def test_max_worker_memory_is_off_by_default_and_read_from_every_source(tmp_path: Path) -> None:
    s = load().settings
    assert (s.max_worker_memory, s.max_worker_memory_metric) == (0, "rss")
    cfg = write(tmp_path / "c.toml", "[workers]\nmax_worker_memory = 512\n")
    loaded = load([APP, "-c", cfg], {"WSGID_MAX_WORKER_MEMORY_METRIC": "PSS"})
    assert (loaded.settings.max_worker_memory, loaded.settings.max_worker_memory_metric) == (
        512,
        "pss",
    )
    flagged = load([APP, "--max-worker-memory", "256", "--max-worker-memory-metric", "rss"])
    assert flagged.sources["max_worker_memory"] == "flag:--max-worker-memory"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--max-worker-memory", "-1"], ("--max-worker-memory", "-1", ">= 0")),
        (["--max-worker-memory", "1G"], ("--max-worker-memory", "1G", "integer")),
        (["--max-worker-memory-metric", "vss"], ("--max-worker-memory-metric", "vss", "rss, pss")),
    ],
)
def test_bad_max_worker_memory_names_the_flag_value_and_what_is_accepted(
    argv: list[str], named: tuple[str, ...]
) -> None:
    message = error_of([APP, *argv])
    for part in named:
        assert part in message, message


# --- bind addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("localhost", "localhost:8000"),
        ("[::1]:9000", "[::1]:9000"),
        ("[::]", "[::]:8000"),
        ("unix:/run/app.sock", "unix:/run/app.sock"),
        ("unix:///run/app.sock", "unix:/run/app.sock"),
        ("fd://3", "fd://3"),
        ("0.0.0.0:0", "0.0.0.0:0"),
        # gunicorn's spellings: App Engine's and Cloud Run's `-b :$PORT`, and tcp://.
        (":8080", "0.0.0.0:8080"),
        ("tcp://127.0.0.1:9000", "127.0.0.1:9000"),
        ("tcp://[::1]:9000", "[::1]:9000"),
    ],
)
def test_bind_addresses_are_accepted_in_canonical_form(given: str, canonical: str) -> None:
    assert load([APP, "-b", given]).settings.bind == (canonical,)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("127.0.0.1:99999", "port"),
        ("127.0.0.1:http", "port"),
        ("::1:8000", "brackets"),
        ("[::1:8000", "]"),
        ("[zz::1]:80", "IPv6"),
        (":", "port"),
        ("unix:", "path"),
        ("fd://x", "file descriptor"),
        ("bad host:80", "host"),
    ],
)
def test_bad_bind_addresses_are_explained(given: str, reason: str) -> None:
    message = error_of([APP, "-b", given])
    assert f'-b "{given}"' in message
    assert reason in message
    assert "HOST:PORT" in message  # what is accepted


def test_bind_list_may_not_be_empty() -> None:
    assert "WSGID_BIND" in error_of(env={"WSGID_BIND": ""})


# --- other validation ------------------------------------------------------------------------


def test_raw_env_entries_must_be_key_value_pairs() -> None:
    message = error_of([APP, "-e", "A=1", "-e", "NOEQUALS"])
    # which item, by its place: its text might be a secret written wrong
    assert "(item 2)" in message and "KEY=VALUE" in message, message


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["-w", "0"], "-w"),
        (["--threads", "0"], "--threads"),
        (["-t", "-1"], "-t"),
        (["--graceful-timeout", "nan"], "--graceful-timeout"),
        (["--keep-alive", "soon"], "--keep-alive"),
        (["--backlog", "0"], "--backlog"),
        (["--max-requests", "-5"], "--max-requests"),
        (["--limit-request-fields", "40000"], "--limit-request-fields"),
        (["--log-level", "verbose"], "--log-level"),
        (["--chdir", ""], "--chdir"),
    ],
)
def test_out_of_range_flag_values_name_the_flag(argv: list[str], flag: str) -> None:
    message = error_of([APP, *argv])
    assert message.startswith(f"Command-line flag {flag} ")
    assert "Accepted" in message


def test_unknown_worker_class_suggests_the_nearest_builtin() -> None:
    message = error_of([APP, "-k", "gthraed"])
    assert "did you mean 'gthread'" in message


def test_a_dotted_worker_class_path_is_accepted() -> None:
    assert load([APP, "-k", "mypkg.workers.Custom"]).settings.worker_class == "mypkg.workers.Custom"


def test_numeric_user_in_the_file_is_read_as_a_uid_string(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[process]\nuser = 1000\n")
    assert load([APP, "-c", cfg]).settings.user == "1000"


# --- the file ------------------------------------------------------------------------------------


def test_tables_and_flat_keys_mean_the_same(tmp_path: Path) -> None:
    grouped = write(
        tmp_path / "g.toml",
        '[server]\nbind = ["127.0.0.1:1"]\n[workers]\nworkers = 3\ntimeout = 5\n'
        '[logging]\nloglevel = "debug"\n',
    )
    flat = write(
        tmp_path / "f.toml",
        'bind = ["127.0.0.1:1"]\nworkers = 3\ntimeout = 5\nloglevel = "debug"\n',
    )
    from_flat = load([APP, "-c", flat]).settings
    assert load([APP, "-c", grouped]).settings == from_flat.replace(config=str(grouped))


def test_a_single_string_in_the_file_is_a_one_item_list(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'bind = "127.0.0.1:1,127.0.0.1:2"\nraw_env = "A=1,2"\n')
    s = load([APP, "-c", cfg]).settings
    assert (s.bind, s.raw_env) == (("127.0.0.1:1", "127.0.0.1:2"), ("A=1,2",))


def test_file_values_keep_their_toml_types(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'workers = "4"\n')
    message = error_of([APP, "-c", cfg])
    assert f"Config file {cfg}, line 1: workers = " in message
    assert '"4"' in message and "an integer from 1 to 4096" in message


def test_a_whole_number_is_accepted_for_seconds(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "keepalive = 5\ngraceful_timeout = 2.5\n")
    s = load([APP, "-c", cfg]).settings
    assert (s.keepalive, s.graceful_timeout) == (5.0, 2.5)


def test_unknown_key_in_the_file_suggests_the_setting(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[workers]\nworkers = 2\ntimout = 5\n")
    message = error_of([APP, "-c", cfg])
    assert f"Config file {cfg}, line 3" in message
    assert 'unknown key "workers.timout"' in message
    assert 'Did you mean "timeout"' in message


def test_gunicorn_flag_spelled_as_a_key_suggests_the_setting(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'access_logfile = "-"\n')
    assert 'Did you mean "accesslog"' in error_of([APP, "-c", cfg])


def test_key_in_the_wrong_table_names_its_table(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[server]\ntimeout = 5\n")
    message = error_of([APP, "-c", cfg])
    assert 'key "timeout" does not belong in [server]' in message
    assert "[workers]" in message


def test_unknown_table_suggests_the_nearest_table(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[loging]\nloglevel = 'info'\n")
    assert "unknown table [loging]; did you mean [logging]?" in error_of([APP, "-c", cfg])


def test_a_setting_used_as_a_table_is_explained(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[bind]\naddress = '1'\n")
    assert '"bind" is a setting, not a table' in error_of([APP, "-c", cfg])


def test_a_table_name_given_a_value_is_explained(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "server = 3\n")
    assert '"server" is a table' in error_of([APP, "-c", cfg])


def test_a_setting_given_twice_in_the_file_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "timeout = 1\n[workers]\ntimeout = 2\n")
    assert '"timeout" is set twice' in error_of([APP, "-c", cfg])


def test_config_cannot_be_set_inside_the_config_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'config = "other.toml"\n')
    assert 'key "config" cannot be set inside a config file' in error_of([APP, "-c", cfg])


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "workers = 2\ntimeout = = 3\n")
    message = error_of([APP, "-c", cfg])
    assert f"Config file {cfg} is not valid TOML" in message
    assert "line 2, column" in message


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes(b"workers = 2\n# \xff\n")
    assert "not UTF-8" in error_of([APP, "-c", str(tmp_path / "c.toml")])


def test_missing_config_file_is_named_with_who_asked_for_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    message = error_of([APP], {"WSGID_CONFIG": missing})
    assert f"Config file {missing} not found" in message
    assert "WSGID_CONFIG" in message


def test_a_directory_as_config_file_is_reported(tmp_path: Path) -> None:
    assert "cannot be read" in error_of([APP, "-c", str(tmp_path)])


def test_a_bad_file_value_is_reported_even_when_a_flag_overrides_it(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "workers = 0\n")
    assert f"Config file {cfg}" in error_of([APP, "-c", cfg, "-w", "2"])


# --- environment and flag names -----------------------------------------------------------------


def test_unknown_env_variable_suggests_the_setting() -> None:
    message = error_of(env={"WSGID_WORKRES": "3"})
    assert "Environment variable WSGID_WORKRES is not a wsgid setting" in message
    assert "Did you mean WSGID_WORKERS?" in message


def test_gunicorn_flag_spelled_as_env_variable_suggests_the_setting() -> None:
    assert "Did you mean WSGID_LOGLEVEL?" in error_of(env={"WSGID_LOG_LEVEL": "debug"})


def test_bad_env_value_names_variable_value_and_what_is_accepted() -> None:
    message = error_of(env={"WSGID_WORKERS": "four"})
    assert message.startswith('Environment variable WSGID_WORKERS="four" is not valid')
    assert "an integer from 1 to 4096" in message


def test_unknown_flag_suggests_the_nearest_flag() -> None:
    message = error_of([APP, "--workres", "3"])
    assert "unknown flag --workres" in message and "Did you mean --workers?" in message


def test_setting_name_used_as_flag_suggests_the_gunicorn_flag() -> None:
    assert "Did you mean --access-logfile?" in error_of([APP, "--accesslog", "-"])


def test_flag_missing_its_value_names_the_flag() -> None:
    assert "-w/--workers" in error_of([APP, "-w"])


def test_bad_flag_value_names_flag_value_and_what_is_accepted() -> None:
    message = error_of([APP, "--workers", "many"])
    assert message.startswith('Command-line flag --workers "many" is not valid')
    assert "an integer from 1 to 4096" in message


# --- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command", "app"),
    [
        ([APP], "serve", APP),
        (["check", APP], "check", APP),
        ([APP, "--check-config"], "check", APP),
        (["config", "show"], "config-show", None),
        (["--print-config", APP], "config-show", APP),
        (["config", "show", "-w", "2", APP], "config-show", APP),
        (["config", "schema"], "config-schema", None),
    ],
)
def test_subcommands_and_their_gunicorn_flags(
    argv: list[str], command: str, app: str | None
) -> None:
    loaded = load(argv)
    assert (loaded.command, loaded.settings.app) == (command, app)


def test_config_show_json_option() -> None:
    assert load(["config", "show", "--json"]).json_output is True
    assert "--json only applies" in error_of([APP, "--json"])


@pytest.mark.parametrize("argv", [["config"], ["config", "list"]])
def test_config_without_a_known_subcommand_is_a_usage_error(argv: list[str]) -> None:
    assert "use `config show`, `config schema` or `config import`" in error_of(argv)


def test_two_apps_are_a_usage_error() -> None:
    assert "only one APP" in error_of([APP, "other:app"])


@pytest.mark.parametrize("argv", [[], ["check"], ["-w", "2"]])
def test_serving_or_checking_without_an_app_is_a_config_error(argv: list[str]) -> None:
    assert "No application given" in error_of(argv)


def test_app_may_come_from_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[application]\napp = "x.y:z"\n')
    loaded = load(["-c", cfg])
    assert (loaded.settings.app, loaded.sources["app"]) == ("x.y:z", f"file:{cfg}")


# --- no source can produce anything but settings or a ConfigError --------------------------------


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(n for n in SPECS if n != "config")),
    value=st.text(max_size=20),
)
def test_any_env_value_gives_settings_or_a_config_error(name: str, value: str) -> None:
    env = {SPECS[name].env_var: value}
    try:
        load_settings([APP], env)
    except ConfigError as exc:
        assert SPECS[name].env_var in str(exc)


def test_metrics_bind_and_shutdown_delay_are_off_by_default_and_read_from_the_file(
    tmp_path: Path,
) -> None:
    s = load().settings
    assert (s.metrics_bind, s.shutdown_delay) == (None, 0)
    cfg = write(
        tmp_path / "c.toml", '[monitoring]\nmetrics_bind = "127.0.0.1:9101"\nshutdown_delay = 5\n'
    )
    loaded = load([APP, "-c", cfg])
    assert (loaded.settings.metrics_bind, loaded.settings.shutdown_delay) == ("127.0.0.1:9101", 5)
    assert loaded.sources["metrics_bind"] == f"file:{cfg}"


def test_metrics_bind_must_differ_from_every_bind() -> None:
    message = error_of([APP, "-b", "127.0.0.1:9000", "--metrics-bind", "127.0.0.1:9000"])
    assert "metrics_bind 127.0.0.1:9000 is also in bind" in message


def test_a_negative_shutdown_delay_names_the_flag_and_the_bound() -> None:
    message = error_of([APP, "--shutdown-delay", "-1"])
    assert "--shutdown-delay" in message and "-1" in message and "from 0 to" in message, message


def test_request_timeout_with_the_sync_worker_is_a_warning_naming_its_source() -> None:
    loaded = load([APP, "--request-timeout", "5"])
    (warning,) = loaded.warnings
    assert warning.startswith("request_timeout 5 (from flag:--request-timeout) has no effect"), (
        warning
    )
    assert "worker_class sync" in warning and "Use timeout" in warning, warning
    for kind in ("gthread", "gevent", "eventlet", "tornado"):
        assert load([APP, "-k", kind], {"WSGID_REQUEST_TIMEOUT": "5"}).warnings == (), kind
    assert load([APP]).warnings == ()  # off by default: nothing to say


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ('raw_env = ["A\\u0000B=1"]', "raw_env"),
        ('pidfile = "/run/a\\u0000b.pid"', "pidfile"),
        ('certfile = "/etc/a\\u0000b.pem"', "certfile"),
        ('pythonpath = ["/srv/\\u0000"]', "pythonpath"),
        ('logconfig_dict = {"a\\u0000" = "b"}', "logconfig_dict"),
    ],
)
def test_a_nul_character_in_any_setting_is_refused_naming_the_file_and_the_setting(
    tmp_path: Path, text: str, setting: str
) -> None:
    # No path, name or environment variable can hold one: it would fail at start instead.
    cfg = write(tmp_path / "c.toml", text + "\n")
    message = error_of([APP, "-c", cfg])
    assert f"{cfg}, line 1" in message and f"{setting} =" in message, message
    assert "holds a NUL character" in message, message


@pytest.mark.parametrize(
    ("flag", "value", "accepted"),
    [
        ("--timeout", "1e308", "a number from 0 to 31536000"),
        ("--graceful-timeout", "1e12", "a number from 0 to 31536000"),
        ("--header-timeout", "inf", "a number above 0, at most 31536000"),
        ("--header-timeout", "0", "a number above 0, at most 31536000"),
        ("--backlog", "2147483648", "an integer from 1 to 2147483647"),
    ],
)
def test_durations_and_the_backlog_have_an_upper_bound_every_consumer_takes(
    flag: str, value: str, accepted: str
) -> None:
    message = error_of([APP, flag, value])
    assert f'Command-line flag {flag} "{value}" is not valid' in message, message
    assert accepted in message, message


def test_a_chdir_that_is_not_an_existing_directory_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    missing, a_file = tmp_path / "missing", write(tmp_path / "f", "")
    message = error_of([APP, "--chdir", str(missing)])
    assert f"{missing!s}' does not exist" in message and "an existing directory" in message
    assert "is not a directory" in error_of([APP, "--chdir", a_file])
    assert load([APP, "--chdir", str(tmp_path)]).settings.chdir == str(tmp_path)


@pytest.mark.parametrize("argv", [["-c", ""], ["--config="]])
def test_an_empty_config_flag_asks_for_a_path(argv: list[str]) -> None:
    # abspath("") is the working directory, which would then be "read" as a file.
    assert "needs a file path; it was empty" in error_of([APP, *argv])


def test_what_a_setting_accepts_is_said_from_its_real_constraints() -> None:
    assert SPECS["statsd_interval"].accepts == "a number above 0, at most 3600"
    assert SPECS["statsd_prefix"].accepts == "a string"  # "" is its default
    assert SPECS["forwarder_headers"].accepts == (
        "a list of any of SCRIPT_NAME, PATH_INFO, REMOTE_USER"
    )
    assert "unix:PATH" in SPECS["metrics_bind"].accepts
    assert "or empty for none" in SPECS["request_id_header"].accepts


def test_an_error_about_raw_env_hides_its_values_as_config_show_does() -> None:
    message = error_of([APP], env={"WSGID_RAW_ENV": "DB_PASSWORD=hunter2,bad"})
    assert "hunter2" not in message, message
    assert "Environment variable WSGID_RAW_ENV: raw_env = " in message, message
    assert "DB_PASSWORD=<hidden>" in message, message
    assert "(item 2)" in message and "not of the form KEY=VALUE" in message, message


def test_a_top_level_setting_named_as_its_table_gets_a_hint_with_the_toml_error(
    tmp_path: Path,
) -> None:
    # tomllib alone says "Cannot overwrite a value": `workers = 4` is then the [workers] table.
    cfg = write(tmp_path / "c.toml", "workers = 4\n[workers]\ntimeout = 5\n")
    message = error_of([APP, "-c", cfg])
    assert "is not valid TOML: Cannot overwrite a value" in message, message
    assert "clashes with the [workers] table" in message, message
    assert (
        load([APP, "-c", write(tmp_path / "d.toml", "[workers]\nworkers = 4\n")]).settings.workers
        == 4
    )
