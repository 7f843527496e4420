"""The `wsgid` command: turns argv into an action and an exit status.

What this module owns:

- `main`, the entry point of the `wsgid` console script and of `python -m wsgid`: it loads the
  settings, then serves (`wsgid.master.run`), checks (`wsgid check`), shows the effective
  configuration (`wsgid config show`) or prints the JSON Schema of the file
  (`wsgid config schema`).
- How settings are presented to people: the `config show` table and JSON (secrets masked
  unless `--show-secrets`), and the reference
  section of docs/configuration.md, rendered from the model in `wsgid.settings` so that it
  cannot drift from it.

Rules it keeps:

- Every bad configuration ends here as one paragraph on stderr and exit status 2; a user never
  sees a traceback for a mistake in their configuration.
- The master and the loader are imported only when a command needs them, so `wsgid --help`,
  `wsgid config ...` and a configuration error stay fast and work even when the server side
  cannot be imported.
- The settings are read in a short-lived child process (`load`), so the process that goes on
  to serve never imports pydantic: see `wsgid.runtime`. This module imports `wsgid.settings`
  only in that child and in the functions that need the model itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import select
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from wsgid.exitcodes import ExitCode
from wsgid.runtime import Command, ConfigError, LoadedSettings, RuntimeSettings

if TYPE_CHECKING:
    from wsgid.settings import SettingSpec


REFERENCE_BEGIN = "<!-- BEGIN REFERENCE: generated from wsgid.settings by scripts/gen-schema -->"
REFERENCE_END = "<!-- END REFERENCE -->"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `wsgid` command with `argv` (without the program name); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        loaded = load(args)
    except ConfigError as exc:
        return _config_error(exc)
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK

    if loaded.command == "config-schema":
        sys.stdout.write(schema_text())
        return ExitCode.OK
    if loaded.command == "config-show":
        sys.stdout.write(show_json(loaded) if loaded.json_output else show_table(loaded))
        return ExitCode.OK
    if loaded.command == "check":
        return _check(loaded)
    return _serve(loaded, args)


def _config_error(exc: ConfigError) -> int:
    _print_error(str(exc))
    return ExitCode.CONFIG


def _print_error(message: str) -> None:
    """`wsgid: error: MESSAGE` on stderr, control characters escaped.

    Messages quote values from the environment and files; an ESC or BEL in
    one must not reach the terminal (the logs escape the same way).
    """
    from wsgid.logs.escape import printable

    print(f"wsgid: error: {printable(message)}", file=sys.stderr)


def _serve(loaded: LoadedSettings, args: list[str]) -> int:
    from wsgid.master import run

    # On HUP the master re-reads the configuration from the same argv and the environment of
    # that moment, through the same code path as at startup.
    try:
        return run(loaded, reload=lambda: load(args))
    except ConfigError as exc:  # e.g. a log file that cannot be opened
        return _config_error(exc)


# --------------------------------------------------------------------------------------------
# Reading the settings in a child process
# --------------------------------------------------------------------------------------------


def load(args: list[str]) -> LoadedSettings:
    """`wsgid.settings.load_settings(args, os.environ)`, in a child process when it can be.

    Why a child: pydantic and the model are needed only to read the configuration, yet
    importing them would stay in the serving master and, by fork, in every worker (about
    11 MiB of a server's memory). A forked child reads and validates the settings and
    sends back their values, or the message of its `ConfigError`; this process builds the
    `RuntimeSettings` of them and never imports pydantic. A HUP reload comes here too.

    Whatever the child cannot send back (`--help` and `--version`, which print; an unexpected
    error; no fork possible; no answer within CHILD_TIMEOUT) is done again here, in-process,
    where it behaves as it always did, and returns the same `RuntimeSettings`.
    """
    answer = _load_in_child(args)
    if answer is None:
        from wsgid.settings import load_settings

        return load_settings(args, os.environ)
    if isinstance(answer, str):
        raise ConfigError(answer)
    values, sources, command, json_output, show_secrets = answer
    return LoadedSettings(RuntimeSettings(**values), sources, command, json_output, show_secrets)


# What the child sends: (values, sources, command, json_output, show_secrets), or a
# ConfigError's message.
_Answer = tuple[dict[str, Any], dict[str, str], Command, bool, bool] | str

# Reading the settings takes a tenth of a second. A child forked on HUP from a master where
# another thread (of a preloaded app) held a lock, an import lock say, can wait on it forever:
# it is killed after this long and the settings are read in-process instead.
CHILD_TIMEOUT = 10.0


def _load_in_child(args: list[str]) -> _Answer | None:
    """What `_read_settings` sent from a forked child, or None when it sent nothing."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:
        os.close(read_fd)
        _read_settings(write_fd, args)
    os.close(write_fd)
    try:
        data = _receive(read_fd, pid)
    finally:
        os.close(read_fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # SIGCHLD ignored: the kernel reaped it, its status is lost
        status = 0
    if status != 0 or not data:  # killed, perhaps halfway through its answer
        return None
    answer: _Answer = pickle.loads(data)
    return answer


def _receive(fd: int, pid: int) -> bytes:
    """All the child writes to `fd`, or nothing if it is still busy after CHILD_TIMEOUT."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            os.kill(pid, signal.SIGKILL)
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_settings(pipe_fd: int, args: list[str]) -> NoReturn:
    """The child of `_load_in_child`: load the settings, send the outcome, exit at once.

    It sends (values, sources, command, json_output, show_secrets), or a `ConfigError`'s
    message, pickled.
    On anything else it sends nothing. Its stdout goes nowhere (what `--help` and `--version`
    print is printed by the in-process retry), and it leaves by `os._exit`, so no buffer or
    exit handler inherited from the parent runs twice.
    """
    status = 1
    try:
        sys.stdout = io.StringIO()
        # Named in `ps`: on a HUP it would otherwise pass for a second master.
        with contextlib.suppress(ImportError):
            import setproctitle

            setproctitle.setproctitle("wsgid: reading configuration")
        from wsgid.settings import SPECS, load_settings

        answer: _Answer
        try:
            loaded = load_settings(args, os.environ)
        except ConfigError as exc:
            answer = str(exc)
        else:
            values = {name: getattr(loaded.settings, name) for name in SPECS}
            answer = (
                values,
                dict(loaded.sources),
                loaded.command,
                loaded.json_output,
                loaded.show_secrets,
            )
        with open(pipe_fd, "wb") as pipe:
            pickle.dump(answer, pipe)
        status = 0
    finally:
        os._exit(status)


def _check(loaded: LoadedSettings) -> int:
    from wsgid.loader import AppLoadError, load_app

    try:
        load_app(loaded.settings)
    except AppLoadError as exc:
        _print_error(str(exc))
        return ExitCode.APP_LOAD_FAILED
    print(f"wsgid: configuration OK; application {loaded.settings.app} loaded.")
    return ExitCode.OK


# --------------------------------------------------------------------------------------------
# config show / config schema
# --------------------------------------------------------------------------------------------


# What `config show` prints in place of a secret (unless --show-secrets).
MASK = "<hidden>"
# Settings whose values are all secrets' carriers: raw_env's NAME=VALUE pairs are the
# application's environment, where its passwords and keys usually live.
SECRET_SETTINGS = frozenset({"raw_env"})
# Keys of a table setting (logconfig_dict) whose values are secrets; matched as parts of
# the lower-cased key with `-` as `_` (`db_password`, `SENTRY_DSN`, `X-Api-Key`).
SECRET_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "token", "api_key", "apikey",
    "private_key", "access_key", "credential", "dsn", "authorization",
)  # fmt: skip
# The password of a URL's userinfo: scheme://user:PASSWORD@host.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*):[^/?#@\s]*@")


def _secret_key(key: object) -> bool:
    text = str(key).lower().replace("-", "_")
    return any(part in text for part in SECRET_KEY_PARTS)


def _masked_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if _secret_key(k) else _masked_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_masked_value(v) for v in value)
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
    return value


def masked(name: str, value: Any) -> Any:
    """`value` of setting `name` as `config show` prints it by default: secrets replaced.

    Masked: every raw_env value (the name stays), the value of every key that looks like a
    secret's (SECRET_KEY_PARTS) anywhere in a table setting, and the password of any URL.
    """
    if name in SECRET_SETTINGS and isinstance(value, (list, tuple)):
        return tuple(f"{item.partition('=')[0]}={MASK}" for item in value)
    return _masked_value(value)


def _shown(loaded: LoadedSettings, name: str) -> Any:
    value = getattr(loaded.settings, name)
    return value if loaded.show_secrets else masked(name, value)


def show_table(loaded: LoadedSettings) -> str:
    """Every effective setting, its value as TOML would spell it, and where it came from."""
    from wsgid.settings import SPECS, format_value

    rows = [("setting", "value", "source")]
    for name, spec in SPECS.items():
        value = _shown(loaded, name)
        rows.append((name, format_value(value, octal=spec.option.octal), loaded.sources[name]))
    name_width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{n:<{name_width}}  {v:<{value_width}}  {s}".rstrip() for n, v, s in rows]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def show_json(loaded: LoadedSettings) -> str:
    """`config show --json`: {name: {"value": ..., "source": ...}} in the model's order."""
    from wsgid.settings import SPECS

    document = {
        name: {"value": _jsonable(_shown(loaded, name)), "source": loaded.sources[name]}
        for name in SPECS
    }
    return json.dumps(document, indent=2) + "\n"


def schema_text() -> str:
    """What `wsgid config schema` prints, and what config/wsgid.schema.json must contain."""
    from wsgid.settings import file_json_schema

    return json.dumps(file_json_schema(), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Reference documentation
# --------------------------------------------------------------------------------------------


def _flags_text(spec: SettingSpec) -> str:
    if spec.option.positional and not spec.option.flags:
        return f"`{spec.option.metavar}` (positional)"
    metavar = "" if spec.is_bool else f" {spec.option.metavar}"
    flags = [f"`{flag}{metavar}`" for flag in spec.option.flags]
    if spec.is_bool and spec.long_flag:
        flags.append(f"`--no-{spec.long_flag[2:]}`")
    return ", ".join(flags)


def _file_text(spec: SettingSpec) -> str:
    if not spec.option.in_file:
        return "not allowed in the file"
    if spec.table:
        return f"`{spec.name}` in `[{spec.table}]`, or at the top level"
    return f"`{spec.name}` at the top level"


def render_reference() -> str:
    """The generated reference section of docs/configuration.md (between the markers)."""
    from wsgid.settings import GROUPS, SPECS

    out: list[str] = [
        REFERENCE_BEGIN,
        "",
        "## Reference",
        "",
        "Generated from the settings model; edit `daemon/wsgid/settings.py`, then run",
        "`scripts/gen-schema`. A test fails when this section is out of date.",
        "",
        "| setting | flags | environment | default |",
        "| --- | --- | --- | --- |",
    ]
    for spec in SPECS.values():
        out.append(
            f"| [`{spec.name}`](#{spec.name}) | {_flags_text(spec)} | `{spec.env_var}` "
            f"| {_default_md(spec)} |"
        )
    for group in GROUPS:
        members = [s for s in SPECS.values() if s.option.group == group.name]
        if not members:
            continue
        heading = f"`[{group.name}]` {group.title}" if group.table else group.title
        out += ["", f"### {heading}", "", group.description]
        for spec in members:
            out += [
                "",
                f"#### `{spec.name}`",
                "",
                spec.description,
                "",
                "| | |",
                "| --- | --- |",
                f"| accepts | {spec.accepts} |",
                f"| default | {_default_md(spec)} |",
                f"| flags | {_flags_text(spec)} |",
                f"| environment | `{spec.env_var}` |",
                f"| file | {_file_text(spec)} |",
            ]
    out += ["", REFERENCE_END]
    return "\n".join(out) + "\n"


def _default_md(spec: SettingSpec) -> str:
    # A default described in words ("$WEB_CONCURRENCY, or 1") reads better as prose.
    if spec.option.default_doc:
        return spec.option.default_doc
    if spec.default is None:
        return "unset"
    if spec.default == ():
        return "empty"
    return f"`{spec.default_text}`"


def splice_reference(document: str) -> str:
    """`document` with its reference section replaced by a freshly rendered one."""
    start = document.find(REFERENCE_BEGIN)
    end = document.find(REFERENCE_END)
    if start < 0 or end < start:
        raise ValueError("the document has no reference markers")
    rest = document[end + len(REFERENCE_END) :]
    return document[:start] + render_reference().rstrip("\n") + rest
