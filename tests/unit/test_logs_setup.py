"""`wsgid.logs.setup`: settings to logs; request ids; stdlib logging; the logging settings."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wsgid import logs
from wsgid.logs import request_id, stdlib
from wsgid.runtime import RuntimeSettings
from wsgid.settings import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Keep the global stdlib logging state these tests change from leaking."""
    root = logging.getLogger()
    handlers, level, last = list(root.handlers), root.level, logging.lastResort
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.lastResort = last
    for name in ("wsgid.access", "wsgid.error", "unit.test"):
        logging.getLogger(name).handlers.clear()
    stdlib.set_error_log(None)


def validated(**values: Any) -> RuntimeSettings:
    """The settings of `values` and defaults for the rest, as the model validates them."""
    return RuntimeSettings.copy_of(Settings(**values))


def make(tmp_path: Path, **values: Any) -> tuple[logs.Logs, Path, Path]:
    error, access = tmp_path / "error.log", tmp_path / "access.log"
    settings = validated(errorlog=str(error), accesslog=str(access), **values)
    return logs.setup(settings), error, access


# --------------------------------------------------------------------------- request ids


def test_request_id_keeps_a_valid_incoming_id() -> None:
    for rid in ("abc", "0f3e-4b1c-9d2a", "Root=1-67891233-abcdef012345678912345678", "a" * 200):
        assert request_id.choose(rid) == rid


@pytest.mark.parametrize("bad", ["", "a b", 'a"b', "a\nb", "é", "a" * 201, "x;y", "<script>"])
def test_request_id_replaces_an_invalid_incoming_id(bad: str) -> None:
    rid = request_id.choose(bad)
    assert rid != bad and len(rid) == 20 and int(rid, 16) >= 0


def test_generated_ids_are_unique_and_differ_after_fork() -> None:
    ids = {request_id.generate() for _ in range(10000)}
    assert len(ids) == 10000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, request_id.generate().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[:12] != request_id.generate()[:12], "a forked worker draws its own prefix"


def test_error_events_carry_the_current_request_id(tmp_path: Path) -> None:
    log, error, _ = make(tmp_path, log_format="json")
    token = request_id.CURRENT.set("rid-42")
    try:
        log.error.error("app.error", path="/x")
    finally:
        request_id.CURRENT.reset(token)
    log.error.info("later")
    first, second = (json.loads(line) for line in error.read_text().splitlines())
    assert first["request_id"] == "rid-42" and "request_id" not in second


# --------------------------------------------------------------------------- Logs


def test_no_access_log_means_no_access_object(tmp_path: Path) -> None:
    assert logs.setup(validated(errorlog=str(tmp_path / "e"))).access is None


def test_level_filter(tmp_path: Path) -> None:
    log, error, _ = make(tmp_path, loglevel="warning")
    log.error.info("hidden")
    log.error.warning("shown")
    assert [ln.split()[2] for ln in error.read_text().splitlines()] == ["shown"]


def test_wsgi_errors_lines_become_events(tmp_path: Path) -> None:
    log, error, _ = make(tmp_path, log_format="json")
    stream = log.error_stream
    stream.write("first line\nsecond")
    stream.write(" half\n")
    stream.writelines(["third\n"])
    stream.flush()
    events = [json.loads(line) for line in error.read_text().splitlines()]
    assert [(e["event"], e["message"]) for e in events] == [
        ("wsgi.errors", "first line"), ("wsgi.errors", "second half"), ("wsgi.errors", "third"),
    ]  # fmt: skip


def test_reopen_after_rename(tmp_path: Path) -> None:
    log, error, access = make(tmp_path)
    log.error.info("before")
    error.rename(tmp_path / "error.log.1")
    access.rename(tmp_path / "access.log.1")
    log.reopen()
    log.error.info("after")
    assert "after" in error.read_text() and "after" not in (tmp_path / "error.log.1").read_text()
    assert access.exists()


def test_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"error log .*no-such-dir"):
        logs.setup(validated(errorlog=str(tmp_path / "no-such-dir" / "e.log")))


# --------------------------------------------------------------------------- stdlib logging


def test_unhandled_stdlib_records_reach_the_error_log(tmp_path: Path) -> None:
    logging.getLogger().handlers.clear()  # pytest's capture handler would take the record
    _, error, _ = make(tmp_path, log_format="json")
    logging.getLogger("unit.test").warning("careful %s", "now", extra={"user": "bob"})
    (record,) = [json.loads(line) for line in error.read_text().splitlines()]
    assert (record["event"], record["logger"], record["level"], record["user"]) == (
        "careful now", "unit.test", "warning", "bob",
    )  # fmt: skip


def test_an_app_configuring_logging_itself_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger().handlers.clear()
    _, error, _ = make(tmp_path)
    logging.basicConfig(format="APP %(message)s", force=True)
    logging.getLogger("unit.test").warning("mine")
    assert "mine" not in error.read_text()


def test_logconfig_dict_routes_through_the_wsgid_handler_and_forwards_wsgid_logs(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "forwarded.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "wsgid": {"class": "wsgid.logs.stdlib.StdlibHandler"},
            "file": {"class": "logging.FileHandler", "filename": str(seen)},
        },
        "root": {"level": "INFO", "handlers": ["wsgid"]},
        "loggers": {"wsgid.error": {"handlers": ["file"], "propagate": False}},
    }
    log, error, _ = make(tmp_path, log_format="json", logconfig_dict=config)
    logging.getLogger("unit.test").info("routed")
    log.error.warning("server.event")
    events = [json.loads(line)["event"] for line in error.read_text().splitlines()]
    assert events == ["routed", "server.event"]
    # The error log, app records included, also goes to the logger the config set up for it.
    forwarded = [json.loads(line)["event"] for line in seen.read_text().splitlines()]
    assert forwarded == ["routed", "server.event"]


def test_logconfig_dict_may_use_gunicorns_defaults_as_under_gunicorn(tmp_path: Path) -> None:
    """gunicorn lays a logconfig_dict over its CONFIG_DEFAULTS: a dict without a version, or
    naming gunicorn's `console` handler without defining it, runs; and the root logger, which
    the dict leaves out, gets gunicorn's console on stdout at INFO."""
    config = {"loggers": {"unit.test": {"level": "DEBUG", "handlers": ["error_console"]}}}
    make(tmp_path, logconfig_dict=config)
    (handler,) = logging.getLogger("unit.test").handlers
    assert isinstance(handler, logging.StreamHandler) and handler.formatter is not None
    assert handler.formatter._fmt == "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    root = logging.getLogger()
    assert root.level == logging.INFO
    assert [h.name for h in root.handlers] == ["console"]


def test_logconfig_dict_of_its_own_handlers_keeps_root_as_it_is(tmp_path: Path) -> None:
    """A dict with handlers of its own and no root (which gunicorn refuses: its default root
    names the console the dict replaced) leaves the root logger alone."""
    config = {
        "version": 1,
        "handlers": {"mine": {"class": "logging.StreamHandler"}},
        "loggers": {"unit.test": {"handlers": ["mine"]}},
    }
    before = list(logging.getLogger().handlers)
    make(tmp_path, logconfig_dict=config)
    assert logging.getLogger().handlers == before


def test_broken_logconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="logconfig_dict"):
        make(tmp_path, logconfig_dict={"version": 1, "handlers": {"x": {"class": "no.Such"}}})


# --------------------------------------------------------------------------- settings


def test_logging_settings_with_gunicorn_flags() -> None:
    argv = [
        "app:x", "--access-logformat", "json", "--log-syslog", "--log-syslog-to",
        "udp://127.0.0.1:5514", "--log-syslog-prefix", "shop", "--log-syslog-facility",
        "LOCAL3", "--capture-output", "--disable-redirect-access-to-syslog", "--log-config",
        "/etc/l.ini", "--log-format", "logfmt", "--log-config-dict", '{"version": 1}',
    ]  # fmt: skip
    s = load_settings(argv, {}).settings
    assert (s.access_log_format, s.syslog, s.syslog_addr, s.syslog_prefix) == (
        "json", True, "udp://127.0.0.1:5514", "shop",
    )  # fmt: skip
    assert (s.syslog_facility, s.capture_output, s.disable_redirect_access_to_syslog) == (
        "local3", True, True,
    )  # fmt: skip
    assert (s.logconfig, s.log_format, s.logconfig_dict) == ("/etc/l.ini", "logfmt", {"version": 1})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--access-logformat", "jsno"], "did you mean 'json'"),
        (["--access-logformat", "%(h)s %"], "not a valid access log format"),
        # a string atom as a number would fail at every request instead
        (["--access-logformat", "%(h)d"], r"a real number is required, not str"),
        (["--log-syslog-to", "/var/log/x"], "not a syslog address"),
        (["--access-logfile", "udp://host:99999"], "port"),
        (["--log-syslog-facility", "local9"], "local9"),
        (["--log-format", "xml"], "xml"),
    ],
)
def test_bad_logging_settings_are_explained(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(["app:x", *argv], {})


def test_logconfig_dict_from_env_json_and_from_toml(tmp_path: Path) -> None:
    s = load_settings(["app:x"], {"WSGID_LOGCONFIG_DICT": '{"version": 1}'}).settings
    assert s.logconfig_dict == {"version": 1}
    for text in (
        "logconfig_dict = { version = 1 }\n",
        "[logging.logconfig_dict]\nversion = 1\n",
        "[logging]\nlogconfig_dict = { version = 1, root = { level = 'INFO' } }\n",
    ):
        path = tmp_path / "c.toml"
        path.write_text(text)
        assert load_settings(["app:x", "-c", str(path)], {}).settings.logconfig_dict["version"] == 1
    with pytest.raises(ConfigError, match="JSON"):
        load_settings(["app:x"], {"WSGID_LOGCONFIG_DICT": "{nope"})
