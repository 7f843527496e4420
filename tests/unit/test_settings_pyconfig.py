"""gunicorn's Python config files, GUNICORN_CMD_ARGS and `wsgid config import`, in-process.

`load_settings` on `-c FILE.py` and `-c python:MODULE`: what is taken, what is warned about or
refused, and the file and line named as each setting's source; hook functions as references
the master resolves (`wsgid.pyconfig.HookResolver`); GUNICORN_CMD_ARGS as one more layer in
gunicorn's precedence; `import_python_config`'s TOML read back by the TOML reader.
tests/integration/test_gunicorn_config.py runs the same through real wsgid processes.
"""

from __future__ import annotations

import multiprocessing
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.settings import APP, error_of, load
from wsgid.pyconfig import HookResolver, hook_reference
from wsgid.settings import ConfigError, import_python_config

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test runs in its own directory; what it puts on sys.path, and the modules of that
    directory it imports, are undone. (Only those: forgetting a compiled wsgid module that was
    first imported during a test breaks the next one to use it.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where.startswith(str(tmp_path)):
            del sys.modules[name]


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


REALISTIC = """\
    import multiprocessing
    import os
    from os import path

    bind = ["127.0.0.1:8001", "unix:/run/myapp.sock"]
    workers = min(multiprocessing.cpu_count() * 2 + 1, 4)
    accesslog = "-"
    raw_env = ["MODE=production"]
    _private = "mine"


    def post_fork(server, worker):
        server.log.info("spawned %s", worker.pid)


    def worker_exit(server, worker):
        pass
"""


# --- -c FILE.py --------------------------------------------------------------------------------


def test_python_config_settings_are_taken_with_file_and_line_as_source(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", REALISTIC)
    loaded = load([APP, "-c", conf])
    settings = loaded.settings
    assert settings.bind == ("127.0.0.1:8001", "unix:/run/myapp.sock")
    assert settings.workers == min(multiprocessing.cpu_count() * 2 + 1, 4)
    assert settings.accesslog == "-"
    assert settings.raw_env == ("MODE=production",)
    assert loaded.sources["bind"] == f"file:{conf}, line 5"
    assert loaded.sources["workers"] == f"file:{conf}, line 6"
    assert loaded.sources["post_fork"] == f"file:{conf}, line 12"
    assert loaded.sources["timeout"] == "default"
    assert loaded.warnings == ()  # modules, imported and private names pass silently


def test_hook_functions_become_references_to_the_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", REALISTIC)
    settings = load([APP, "-c", conf]).settings
    assert settings.post_fork == f"python-config:{conf}:post_fork"
    assert settings.worker_exit == hook_reference(conf, "worker_exit")
    assert settings.on_starting is None


def test_hook_references_resolve_running_the_file_once_for_all_its_hooks(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    conf = write(
        tmp_path / "gunicorn.conf.py",
        f"""\
        with open({str(runs)!r}, "a") as f:
            f.write("ran\\n")

        def post_fork(server, worker):
            return ("post_fork", server, worker)

        def on_exit(server):
            return ("on_exit", server)
        """,
    )
    resolver = HookResolver()
    post_fork = resolver.resolve(hook_reference(conf, "post_fork"))
    on_exit = resolver.resolve(hook_reference(conf, "on_exit"))
    assert post_fork("s", "w") == ("post_fork", "s", "w")
    assert on_exit("s") == ("on_exit", "s")
    assert runs.read_text() == "ran\n"


def test_a_hook_the_file_no_longer_defines_is_an_error_naming_it(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\n")
    with pytest.raises(Exception, match="no longer defines post_fork"):
        HookResolver().resolve(hook_reference(conf, "post_fork"))


def test_values_are_converted_as_gunicorn_converts_them(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """\
        import os
        workers = os.environ.get("NOT_SET_ANYWHERE", "3")
        bind = "127.0.0.1:9000"
        preload_app = True
        umask = 0o22
        user = None
        """,
    )
    settings = load([APP, "-c", conf]).settings
    assert settings.workers == 3
    assert settings.bind == ("127.0.0.1:9000",)
    assert settings.preload_app is True
    assert settings.umask == 0o22
    assert settings.user is None


def test_gunicorn_setting_wsgid_lacks_is_a_warning_naming_it_and_its_line(
    tmp_path: Path,
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\ndirty_workers = 2\n")
    loaded = load([APP, "-c", conf])
    assert loaded.settings.workers == 2
    (warning,) = loaded.warnings
    assert warning.startswith(f"Config file {conf}, line 2: dirty_workers is a gunicorn setting")
    assert "docs/gunicorn.md" in warning


@pytest.mark.parametrize("value", ['"uwsgi"', '"h2"', "None"])
def test_protocol_other_than_http_is_refused_naming_file_key_value_and_http(
    tmp_path: Path, value: str
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", f"workers = 2\nprotocol = {value}\n")
    message = error_of([APP, "-c", conf])
    assert message.startswith(f"Config file {conf}, line 2: protocol = {value} is refused")
    assert "wsgid serves only HTTP" in message
    with pytest.raises(ConfigError, match="wsgid serves only HTTP"):
        import_python_config(conf, "the command line")


def test_protocol_http_is_accepted_with_the_warning_of_a_gunicorn_only_setting(
    tmp_path: Path,
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", 'protocol = "HTTP"\n')
    (warning,) = load([APP, "-c", conf]).warnings
    assert warning.startswith(f"Config file {conf}, line 1: protocol is a gunicorn setting")


def test_a_name_close_to_a_setting_is_a_warning_with_a_did_you_mean_and_the_file_runs(
    tmp_path: Path,
) -> None:
    # gunicorn runs such a file and ignores the name: so does wsgid, and says so.
    conf = write(tmp_path / "gunicorn.conf.py", "bind = '127.0.0.1:8000'\nworker = 4\n")
    loaded = load([APP, "-c", conf])
    assert loaded.settings.workers == 1
    (warning,) = loaded.warnings
    assert warning.startswith(f'Config file {conf}, line 2: "worker" is not a setting, and is')
    assert 'Did you mean "workers"?' in warning
    assert "_worker" in warning  # how to keep a helper of the file's own


def test_a_hook_function_close_to_a_hook_is_a_warning_with_a_did_you_mean(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "def post_frok(server, worker):\n    pass\n")
    loaded = load([APP, "-c", conf])
    assert loaded.settings.post_fork is None
    assert any('Did you mean "post_fork"?' in w for w in loaded.warnings), loaded.warnings


def test_upper_case_constants_and_helper_names_near_a_setting_run_as_under_gunicorn(
    tmp_path: Path,
) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """\
        WORKERS = 3
        TIMEOUT = 40
        LOG_LEVEL = "debug"
        workers = WORKERS
        timeout = TIMEOUT
        loglevel = LOG_LEVEL
        worker_count = 4
        env = "prod"
        """,
    )
    loaded = load([APP, "-c", conf])
    s = loaded.settings
    assert (s.workers, s.timeout, s.loglevel) == (3, 40.0, "debug")
    text = "\n".join(loaded.warnings)
    for constant in ("WORKERS", "TIMEOUT", "LOG_LEVEL"):
        assert f'"{constant}"' not in text, text  # never taken for a typo
        assert constant in text, text  # listed among the file's helpers


def test_helper_names_far_from_any_setting_are_listed_in_one_warning(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """\
        import multiprocessing
        cores = multiprocessing.cpu_count()
        host = "127.0.0.1"
        bind = f"{host}:8000"
        workers = cores + 1
        """,
    )
    loaded = load([APP, "-c", conf])
    assert loaded.settings.workers == multiprocessing.cpu_count() + 1
    (warning,) = loaded.warnings
    assert "cores (line 2), host (line 3) are not settings" in warning


def test_config_cannot_be_set_inside_a_python_config(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "config = 'other.py'\n")
    assert '"config" cannot be set inside a config file' in error_of([APP, "-c", conf])


def test_bad_value_names_the_file_the_line_and_the_value(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "# workers\n\nworkers = 'many'\n")
    message = error_of([APP, "-c", conf])
    assert message.startswith(f'Config file {conf}, line 3: workers = "many" is not valid')
    assert "Accepted for workers" in message


# A gunicorn config that spells out gunicorn's defaults: gunicorn's validators take None for
# these settings (its own default for sendfile), so the file runs under gunicorn.
SPELLED_OUT_DEFAULTS = """\
    sendfile = None
    errorlog = None
    capture_output = None
    preload_app = None
    reload = None
    raw_env = None
    forwarded_allow_ips = None
    loglevel = None
    worker_class = None
    pidfile = None
"""


def test_none_for_a_setting_gunicorn_takes_none_for_is_its_default(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", SPELLED_OUT_DEFAULTS)
    defaults = load([APP]).settings
    settings = load([APP, "-c", conf]).settings
    for name in ("sendfile", "errorlog", "capture_output", "preload_app", "reload", "raw_env"):
        assert getattr(settings, name) == getattr(defaults, name), name
    assert settings.forwarded_allow_ips == defaults.forwarded_allow_ips
    assert settings.loglevel == defaults.loglevel
    assert settings.worker_class == defaults.worker_class
    assert settings.pidfile is None


def test_none_for_a_setting_gunicorn_refuses_none_for_stays_an_error(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = None\n")
    message = error_of([APP, "-c", conf])
    assert message.startswith(f"Config file {conf}, line 1: workers = None is not valid")


def test_forwarder_headers_without_an_underscore_are_dropped_with_a_warning(
    tmp_path: Path,
) -> None:
    # gunicorn takes any names there and maps only those with an underscore: a config listing
    # the X-Forwarded-* headers runs under gunicorn, and they change nothing.
    text = 'forwarder_headers = "X-REAL-IP,X-FORWARDED-FOR,SCRIPT_NAME"\n'
    conf = write(tmp_path / "gunicorn.conf.py", text)
    loaded = load([APP, "-c", conf])
    assert loaded.settings.forwarder_headers == ("SCRIPT_NAME",)
    (warning,) = [w for w in loaded.warnings if "forwarder_headers" in w]
    assert warning.startswith(f"Config file {conf}, line 1: forwarder_headers"), warning
    assert "X-REAL-IP, X-FORWARDED-FOR" in warning and "underscore" in warning, warning


def test_forwarder_headers_of_hyphenated_names_only_are_none_as_under_gunicorn(
    tmp_path: Path,
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", 'forwarder_headers = ["X-Real-IP"]\n')
    assert load([APP, "-c", conf]).settings.forwarder_headers == ()


def test_exception_in_the_file_is_reported_with_its_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\nraise ValueError('boom')\n")
    message = error_of([APP, "-c", conf])
    assert "raised ValueError: boom while being executed (line 2)" in message
    assert "given by flag -c" in message


def test_a_config_importing_gunicorn_without_it_says_what_to_do(tmp_path: Path) -> None:
    # gunicorn configs rename the Server header this way; wsgid does not need gunicorn.
    text = 'import gunicorn\ngunicorn.SERVER_SOFTWARE = "webserver"\nworkers = 2\n'
    conf = write(tmp_path / "gunicorn.conf.py", text)
    message = error_of([APP, "-c", conf])
    assert "No module named 'gunicorn'" in message and "(line 1)" in message, message
    assert "remove the import" in message and "Server: wsgid" in message, message


def test_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\nbind = [\n")
    assert "is not valid Python" in error_of([APP, "-c", conf])


def test_missing_python_config_is_reported_as_the_toml_one_is(tmp_path: Path) -> None:
    message = error_of([APP, "-c", str(tmp_path / "nope.py")])
    assert message.startswith(f"Config file {tmp_path / 'nope.py'} not found (given by flag -c)")


def test_toml_stays_the_format_of_other_extensions(tmp_path: Path) -> None:
    conf = write(tmp_path / "wsgid.conf", "workers = 5\n")
    assert load([APP, "-c", conf]).settings.workers == 5


def test_a_gunicorn_python_config_without_py_is_refused_saying_to_name_it_py(
    tmp_path: Path,
) -> None:
    # gunicorn runs any -c file as Python (`-c gunicorn.conf`); wsgid reads it as TOML, which
    # a Python file rarely is: the error says how to have it run as Python.
    conf = write(tmp_path / "gunicorn.conf", "import multiprocessing\nworkers = 2\n")
    message = error_of([APP, "-c", conf])
    assert message.startswith(f"Config file {conf} is not valid TOML: "), message
    assert "valid Python" in message and "gunicorn.conf.py" in message, message


def test_a_toml_error_in_a_file_that_is_not_python_has_no_python_hint(tmp_path: Path) -> None:
    conf = write(tmp_path / "wsgid.conf", "[workers]\nworkers = 2x\n")
    message = error_of([APP, "-c", conf])
    assert "is not valid TOML" in message and "Python" not in message, message


def test_python_module_config_is_imported_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    conf = write(tmp_path / "deploy" / "gunicorn_settings.py", "workers = 6\ntimeout = 12\n")
    loaded = load([APP, "-c", "python:deploy.gunicorn_settings"])
    assert loaded.settings.workers == 6
    assert loaded.settings.config == "python:deploy.gunicorn_settings"
    assert loaded.sources["timeout"] == f"file:{conf}, line 2"


def test_python_module_config_hooks_resolve_from_the_module(tmp_path: Path) -> None:
    write(tmp_path / "deploy_hooks_conf.py", "def on_exit(server):\n    return server * 2\n")
    settings = load([APP, "-c", "python:deploy_hooks_conf"]).settings
    assert settings.on_exit == "python-config:python:deploy_hooks_conf:on_exit"
    assert HookResolver().resolve(settings.on_exit)(21) == 42


def test_worker_class_given_as_a_class_becomes_its_dotted_path(tmp_path: Path) -> None:
    write(
        tmp_path / "myworkers.py",
        "from wsgid.workers.base import Worker\nclass Mine(Worker):\n    pass\n",
    )
    conf = write(tmp_path / "gunicorn.conf.py", "from myworkers import Mine\nworker_class = Mine\n")
    assert load([APP, "-c", conf]).settings.worker_class == "myworkers.Mine"
    local = write(tmp_path / "local.py", "class Mine:\n    pass\nworker_class = Mine\n")
    assert "worker_class is a class defined in the config itself" in error_of([APP, "-c", local])


def test_missing_python_module_config_names_the_module() -> None:
    message = error_of([APP, "-c", "python:no_such_config_module"])
    assert "names module 'no_such_config_module', which cannot be found" in message


# --- GUNICORN_CMD_ARGS ---------------------------------------------------------------------------


def test_gunicorn_cmd_args_sets_settings_with_its_own_source() -> None:
    loaded = load([APP], {"GUNICORN_CMD_ARGS": "--workers 3 -b 127.0.0.1:9000 --preload"})
    assert loaded.settings.workers == 3
    assert loaded.settings.bind == ("127.0.0.1:9000",)
    assert loaded.settings.preload_app is True
    assert loaded.sources["workers"] == "env:GUNICORN_CMD_ARGS"


def test_gunicorn_cmd_args_is_split_as_a_shell_splits() -> None:
    env = {"GUNICORN_CMD_ARGS": "--access-logformat '%(h)s \"%(r)s\"' -e 'A=b c'"}
    settings = load([APP], env).settings
    assert settings.access_log_format == '%(h)s "%(r)s"'
    assert settings.raw_env == ("A=b c",)


def test_precedence_file_then_gunicorn_cmd_args_then_wsgid_variables_then_flags(
    tmp_path: Path,
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\ntimeout = 5\nbacklog = 10\n")
    env = {"GUNICORN_CMD_ARGS": "--workers 3 --timeout 6", "WSGID_TIMEOUT": "7"}
    loaded = load([APP, "-c", conf, "--backlog", "11"], env)
    assert loaded.settings.workers == 3  # GUNICORN_CMD_ARGS beats the file
    assert loaded.settings.timeout == 7  # WSGID_* beats GUNICORN_CMD_ARGS
    assert loaded.settings.backlog == 11  # the command line beats the file
    assert load([APP, "-c", conf, "-w", "4"], env).settings.workers == 4  # and everything


def test_gunicorn_cmd_args_can_name_the_config_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\nkeepalive = 9\n")
    loaded = load([APP], {"GUNICORN_CMD_ARGS": f"-c {conf}"})
    assert loaded.settings.keepalive == 9
    assert "given by environment variable GUNICORN_CMD_ARGS" in error_of(
        [APP], {"GUNICORN_CMD_ARGS": f"-c {tmp_path / 'missing.py'}"}
    )


def test_gunicorn_cmd_args_errors_name_the_variable() -> None:
    unknown = error_of([APP], {"GUNICORN_CMD_ARGS": "--workres 3"})
    assert unknown.startswith("Environment variable GUNICORN_CMD_ARGS: unknown flag --workres.")
    assert "Did you mean --workers?" in unknown
    bad = error_of([APP], {"GUNICORN_CMD_ARGS": "--workers many"})
    assert bad.startswith('Environment variable GUNICORN_CMD_ARGS: flag --workers "many" is not')
    unbalanced = error_of([APP], {"GUNICORN_CMD_ARGS": "--name 'x"})
    assert "cannot be split into arguments" in unbalanced


def test_gunicorn_cmd_args_holds_flags_only() -> None:
    message = error_of([APP], {"GUNICORN_CMD_ARGS": "other.mod:app --workers 3"})
    assert "holds more than flags of settings" in message


def test_gunicorn_cmd_args_check_config_and_print_config_are_the_commands() -> None:
    assert load([APP], {"GUNICORN_CMD_ARGS": "--check-config -w 3"}).command == "check"
    assert load([APP], {"GUNICORN_CMD_ARGS": "--print-config"}).command == "config-show"
    # A command the command line names wins, as its flags win over the variable's.
    assert load(["config", "show"], {"GUNICORN_CMD_ARGS": "--check-config"}).command == (
        "config-show"
    )
    assert "holds more than flags" in error_of([APP], {"GUNICORN_CMD_ARGS": "check -w 2"})


@pytest.mark.parametrize(
    "line, command", [("check_config = True", "check"), ("print_config = 'true'", "config-show")]
)
def test_check_config_or_print_config_in_a_python_config_is_the_command_not_a_warning(
    tmp_path: Path, line: str, command: str
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", f"workers = 2\n{line}\n")
    loaded = load([APP, "-c", conf])
    assert loaded.command == command
    assert loaded.warnings == ()
    assert load(["status", "-c", conf]).command == "status"  # the command line's wins
    off = write(tmp_path / "off.py", "check_config = False\nprint_config = False\n")
    assert load([APP, "-c", off]).command == "serve"
    both = write(tmp_path / "both.py", "check_config = True\nprint_config = True\n")
    assert "check_config and print_config are both true" in error_of([APP, "-c", both])


# --- wsgid config import -------------------------------------------------------------------------


def imported(location: str) -> dict[str, Any]:
    text = import_python_config(location, "the command line")
    return tomllib.loads(text)


def test_config_import_prints_toml_in_the_tables_of_the_example(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", REALISTIC)
    document = imported(conf)
    assert document["server"] == {"bind": ["127.0.0.1:8001", "unix:/run/myapp.sock"]}
    assert document["workers"] == {"workers": min(multiprocessing.cpu_count() * 2 + 1, 4)}
    assert document["logging"] == {"accesslog": "-"}
    assert document["application"] == {"raw_env": ["MODE=production"]}


def test_config_import_output_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """\
        bind = ["127.0.0.1:8001"]
        workers = 3
        umask = 0o27
        secure_scheme_headers = {"X-Forwarded-Proto": "https", "Front-End.Https": "on"}
        logconfig_dict = {"version": 1, "loggers": {"gunicorn.error": {"level": "INFO"}}}
        proxy_protocol = True
        """,
    )
    toml = tmp_path / "wsgid.toml"
    toml.write_text(import_python_config(conf, "the command line"))
    from_python = load([APP, "-c", conf]).settings
    from_toml = load([APP, "-c", str(toml)]).settings
    for name in ("bind", "workers", "umask", "secure_scheme_headers", "logconfig_dict"):
        assert getattr(from_toml, name) == getattr(from_python, name), name
    assert from_toml.proxy_protocol == "auto"


def test_config_import_notes_computed_values(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        "import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\n",
    )
    text = import_python_config(conf, "the command line")
    assert "# computed by the file when converted: multiprocessing.cpu_count() * 2 + 1" in text


def test_config_import_hooks_of_an_unimportable_file_become_a_note(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", REALISTIC)
    text = import_python_config(conf, "the command line")
    document = tomllib.loads(text)
    assert document["hooks"] == {}  # the table holds the notes only
    note = " ".join(line.removeprefix("# ") for line in text.splitlines())
    assert "Hook functions of gunicorn.conf.py left out: post_fork, worker_exit." in note
    assert "its name, gunicorn.conf, is not a module name" in note
    assert 'write post_fork = "hooks:post_fork"; worker_exit = "hooks:worker_exit"' in note


def test_config_import_hooks_of_an_importable_file_become_import_strings(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    conf = write(tmp_path / "deploy" / "gunicorn_conf.py", REALISTIC)
    document = imported(conf)
    assert document["hooks"] == {
        "post_fork": "deploy.gunicorn_conf:post_fork",
        "worker_exit": "deploy.gunicorn_conf:worker_exit",
    }


def test_config_import_hooks_imported_from_a_module_keep_their_module(tmp_path: Path) -> None:
    write(tmp_path / "myhooks.py", "def on_starting(server):\n    pass\n")
    conf = write(
        tmp_path / "gunicorn.conf.py",
        "from myhooks import on_starting\nwhen_ready = 'myhooks:on_starting'\n",
    )
    document = imported(conf)
    assert document["hooks"] == {
        "on_starting": "myhooks:on_starting",
        "when_ready": "myhooks:on_starting",
    }


def test_config_import_lists_what_it_leaves_out(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "dirty_workers = 2\ncores = 4\nworkers = 2\n")
    text = import_python_config(conf, "the command line")
    assert "# dirty_workers = 2" in text
    assert "left out: cores." in text
    assert tomllib.loads(text) == {"workers": {"workers": 2}}


def test_config_import_says_what_the_file_did_to_the_environment_and_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MYAPP_MODE", "MYAPP_SECRET"):  # unset, and unset again afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    text = """\
        import os
        import sys

        os.environ.setdefault("MYAPP_MODE", "production")
        os.environ["MYAPP_SECRET"] = "hunter2"
        sys.path.insert(0, "/srv/app/src")
        workers = 2
    """
    conf = write(tmp_path / "gunicorn.conf.py", text)
    try:
        out = import_python_config(conf, "the command line")
    finally:
        sys.modules.pop("__config__", None)
    assert "MYAPP_MODE" in out and "MYAPP_SECRET" in out and "raw_env" in out, out
    assert "hunter2" not in out  # names only: a value may be a secret
    document = tomllib.loads(out)
    assert document["workers"] == {"workers": 2}, out
    assert document["application"] == {"pythonpath": ["/srv/app/src"]}, out


def test_config_import_leaves_out_a_value_toml_cannot_hold_saying_so(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """\
        import logging
        import sys

        class HealthFilter(logging.Filter):
            pass

        logconfig_dict = {
            "version": 1,
            "filters": {"health": {"()": HealthFilter}},
            "handlers": {"out": {"class": "logging.StreamHandler", "stream": sys.stdout}},
            "loggers": {"gunicorn.error": {"handlers": ["out"]}},
        }
        raw_paste_global_conf = ["name=\x1b[31m"]
        workers = 2
        """,
    )
    text = import_python_config(conf, "the command line")
    document = tomllib.loads(text)  # must parse, whatever the file held
    assert document["workers"] == {"workers": 2}
    assert "logconfig_dict" not in document.get("logging", {})
    note = " ".join(line.removeprefix("# ") for line in text.splitlines())
    assert (
        "logconfig_dict left out: its value holds class HealthFilter (at "
        "logconfig_dict['filters']['health']['()']), which TOML cannot express" in note
    )
    assert "keep running wsgid -c gunicorn.conf.py" in note
    assert '"ext://sys.stdout" for a stream' in note


@pytest.mark.parametrize(
    "value, where",
    [
        (
            "{'version': 1, 'handlers': {'h': {'stream': sys.stdout}}}",
            "['handlers']['h']['stream']",
        ),
        ("{'version': 1, 'root': {'level': None}}", "['root']['level']"),
        ("{'version': 1, 'x': [1, object]}", "['x'][1]"),
        ("{'version': 1, 'x': {1: 'a'}}", "['x']"),
    ],
)
def test_config_import_output_parses_whatever_is_nested_in_a_value(
    tmp_path: Path, value: str, where: str
) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", f"import sys\nlogconfig_dict = {value}\n")
    text = import_python_config(conf, "the command line")
    assert tomllib.loads(text) == {"logging": {}}  # the table holds the note only
    note = " ".join(line.removeprefix("# ") for line in text.splitlines())
    assert f"(at logconfig_dict{where})" in note


def test_config_import_comments_stay_comments_whatever_the_file_holds(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        'workers = (\n    2\n)\nprotocol_x = 1\ndirty_apps = ["a\\nb\\x1b"]\n',
    )
    text = import_python_config(conf, "the command line")
    assert tomllib.loads(text) == {"workers": {"workers": 2}}


def test_config_import_quotes_keys_that_are_not_bare(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        'logconfig_dict = {"version": 1, "loggers": {"gunicorn.error": {"level": "INFO"}}}\n',
    )
    document = imported(conf)
    assert document["logging"]["logconfig_dict"]["loggers"] == {"gunicorn.error": {"level": "INFO"}}


def test_config_import_refuses_a_bad_value_as_serving_would(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 0\n")
    with pytest.raises(ConfigError, match=r"line 1: workers = 0 is not valid"):
        import_python_config(conf, "the command line")


def test_config_import_is_a_command_taking_the_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 2\n")
    loaded = load(["config", "import", conf])
    assert loaded.command == "config-import"
    assert loaded.settings.config == conf
    assert "needs a gunicorn Python config file" in error_of(["config", "import"])


# --- ./gunicorn.conf.py, gunicorn's default -----------------------------------------------------


def test_gunicorn_conf_py_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write(tmp_path / "gunicorn.conf.py", "workers = 3\n")
    loaded = load(["pkg:app"])
    assert loaded.settings.workers == 3
    assert loaded.sources["workers"] == f"file:{tmp_path / 'gunicorn.conf.py'}, line 1"
    assert loaded.settings.config == str(tmp_path / "gunicorn.conf.py")
    assert loaded.sources["config"] == "default"


def test_a_named_config_file_replaces_the_default_one(tmp_path: Path) -> None:
    write(tmp_path / "gunicorn.conf.py", "workers = 3\n")
    other = write(tmp_path / "other.toml", "[workers]\nworkers = 5\n")
    assert load(["pkg:app", "-c", other]).settings.workers == 5
    assert load(["pkg:app"], {"WSGID_CONFIG": other}).settings.workers == 5


def test_an_error_in_the_default_config_file_says_it_was_read_by_default(tmp_path: Path) -> None:
    write(tmp_path / "gunicorn.conf.py", "workers = 'three'\n")
    assert "gunicorn.conf.py" in error_of(["pkg:app"])
