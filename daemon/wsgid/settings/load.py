"""`load_settings`: every source read, validated on its own, then merged in order.

What this module owns: the order of the sources -- built-in defaults < config file
(`-c`/`--config`, `WSGID_CONFIG` or a `-c` in `GUNICORN_CMD_ARGS`, else ./gunicorn.conf.py
if there is one, as in gunicorn; TOML, or a gunicorn Python file) < the server section of a
paste file (under pserve) < `GUNICORN_CMD_ARGS` < `WSGID_<NAME>` environment < command line:
gunicorn's order, with wsgid's variables above gunicorn's --, where each effective value came
from (a paste file's [loggers] included), and the message of a value the model refuses: it
names the source (file path and line, environment variable or flag), the key, the bad value
and what is accepted.

Each source is validated on its own before the merge, so a bad value is reported with the
source it came from even when a higher-precedence source would have overridden it: a typo in
the file should not lie in wait until the day the overriding flag is dropped.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wsgid.deferred_modules import without_package_init
from wsgid.pyconfig import is_python
from wsgid.runtime import Command, ConfigError, LoadedSettings, RuntimeSettings
from wsgid.settings import table
from wsgid.settings.cmdline import parse_command_line, read_gunicorn_cmd_args
from wsgid.settings.sources import (
    Entry,
    Layer,
    environment_defaults,
    read_environment,
    read_file,
    read_paste_server,
)
from wsgid.settings.specs import SPECS, format_value

if TYPE_CHECKING:
    import pydantic_core as core

    from wsgid.paste import ServerSection
else:
    # Validating needs only pydantic-core's compiled module, which has the same names; its
    # package's Python (the schema's typed dicts) costs a third of this process's imports.
    core = without_package_init("pydantic_core", "_pydantic_core")

# The config file read when no source names one, as gunicorn does (in the working directory).
DEFAULT_CONFIG = "gunicorn.conf.py"


@functools.cache
def _validator() -> core.SchemaValidator:
    """pydantic-core's validator of the settings' values: the model's validation, without the
    model.

    It is built from the generated table's schema (0.2 ms) when the installed pydantic-core
    is the one the table was rendered with; else the schema, whose format is pydantic-core's
    own, is taken from the model itself, which costs the import of pydantic and the model's
    build, as before the table (about 90 ms).
    """
    if core.__version__ == table.PYDANTIC_CORE:
        return core.SchemaValidator(table.SCHEMA)
    from wsgid.settings.model import Settings
    from wsgid.settings.tablegen import values_schema

    return core.SchemaValidator(values_schema(Settings.__pydantic_core_schema__))


def validate_values(values: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """Every setting's value: those of `values`, checked and converted as the model does, and
    the defaults of the others. Raises pydantic-core's `ValidationError`."""
    validated: dict[str, Any] = _validator().validate_python(values, strict=strict)[0]
    return validated


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def validate_layer(layer: Layer) -> None:
    """Check every value of one source on its own; report the first bad one against its source."""
    if not layer.entries:
        return
    values = {name: entry.value for name, entry in layer.entries.items()}
    try:
        # TOML values carry real types, so the file is checked strictly (`workers = "4"` is a
        # mistake worth reporting); environment variables and flags are strings by nature,
        # and a Python config is converted as gunicorn converts it (its values are often
        # read from the environment: `workers = os.environ.get("WORKERS", 4)`).
        validate_values(values, strict=layer.kind == "file")
    except core.ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            if not loc or loc[0] not in layer.entries:
                continue  # a cross-field rule; judged on the merged result
            name = str(loc[0])
            raise ConfigError(_bad_value_message(layer.entries[name], name, error)) from None


def _bad_value_message(entry: Entry, name: str, error: Mapping[str, Any]) -> str:
    from wsgid.settings.render import masked  # an error's path only

    spec = SPECS[name]
    loc = error["loc"]
    item = ""
    subject, reason = entry.subject, _reason(error)
    several = isinstance(entry.value, tuple) and len(entry.value) > 1
    if several and len(loc) > 1 and isinstance(loc[1], int):
        item = f" (item {format_value(error['input'])})"
    hidden = masked(name, entry.value)
    if hidden != entry.value:
        # Not a secret more in an error than in `config show`: the source and the value
        # with what config show hides hidden, and the offending item likewise.
        origin = re.split(r' = |="| "', entry.subject, maxsplit=1)[0]  # the value cut off
        written = f"{origin} =" if origin.endswith(name) else f"{origin}: {name} ="
        subject = f"{written} {format_value(hidden)}"
        if item:
            item = f" (item {loc[1] + 1})"
        reason = reason.replace(repr(error["input"]), "the item")
    end = "" if reason.endswith(("?", ".")) else "."
    return f"{subject} is not valid{item}: {reason}{end} Accepted for {name}: {spec.accepts}."


def _pserve_serves_its_app(
    server: ServerSection, merged: Mapping[str, Entry], values: Mapping[str, Any]
) -> None:
    """Under pserve no source may name another application than the one pserve loaded, nor
    ask wsgid to reload it: pserve built it before wsgid started, so it is served as if
    preloaded, and new workers would run the old code (`pserve --reload` restarts all)."""
    for name in ("app", "paste"):
        entry = merged.get(name)
        if entry is not None and entry.value is not None:
            raise ConfigError(
                f"{entry.subject} names an application, but wsgid runs under pserve here and"
                f" serves the one of {server.ini}; remove {name}."
            )
    entry = merged.get("reload")
    if entry is not None and values["reload"]:
        raise ConfigError(
            f"{entry.subject} asks wsgid to reload the application's code, but under pserve"
            f" the application of {server.ini} is built once, before wsgid starts, so new"
            " workers would still run the old code; remove reload and run `pserve --reload`,"
            " which restarts the whole server when the code changes."
        )


def _logging_of_paste_file(
    values: dict[str, Any], merged: Mapping[str, Entry], sources: dict[str, str]
) -> None:
    """Set `logconfig` to the paste file in `values`, if it has a [loggers] section.

    As gunicorn does: a [loggers] section configures stdlib logging unless the logging config
    is chosen elsewhere (logconfig; logconfig_json and logconfig_dict beat it anyway). Reading
    the file here also reports a missing or broken one before anything starts.
    """
    import configparser  # a paste file's only: a start without one need not import them

    from wsgid.paste import has_loggers

    paste = merged["paste"]
    path = values["paste"].partition("#")[0]
    try:
        if not has_loggers(path) or "logconfig" in merged:
            return
    except FileNotFoundError:
        raise ConfigError(f"{paste.subject}: the file {path} does not exist.") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{paste.subject}: {path} is not an ini file: {reason}.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"{paste.subject}: the file {path} cannot be read: {exc}.") from None
    sources["logconfig"] = f"paste:{path} [loggers]"
    values["logconfig"] = path


def load_settings(
    argv: Sequence[str], environ: Mapping[str, str], server: ServerSection | None = None
) -> LoadedSettings:
    """Build the effective settings from defaults, file, environment and `argv` (no program name).

    `server`: the server section of a paste file that runs wsgid under pserve, a source
    between the TOML file and the environment; the application is then pserve's.
    The model validates them; the result holds its `RuntimeSettings` copy, what the rest of
    wsgid reads. Raises ConfigError for any bad configuration; argparse's --help and
    --version print and raise SystemExit(0).
    """
    command_line = parse_command_line(argv)
    if command_line.command == "config-schema":
        # The schema describes the file format; it does not depend on any configuration.
        defaults = RuntimeSettings(**validate_values({}))
        return LoadedSettings(defaults, dict.fromkeys(SPECS, "default"), "config-schema")

    if command_line.command == "config-import":
        # What it converts is the file alone; `wsgid.settings.convert` reads it.
        given = command_line.layer.entries.get("config")
        if given is None or given.value is None or not is_python(str(given.value)):
            raise ConfigError(
                "Command line: `wsgid config import` needs a gunicorn Python config file: "
                "wsgid config import gunicorn.conf.py (or python:MODULE)."
            )
        imported = RuntimeSettings(**validate_values({"config": given.value}))
        sources = dict.fromkeys(SPECS, "default") | {"config": given.label}
        return LoadedSettings(imported, sources, "config-import")

    gunicorn_args, env_command = read_gunicorn_cmd_args(environ)
    wsgid_env = read_environment(environ)
    layers = [environment_defaults(environ), gunicorn_args, wsgid_env, command_line.layer]
    if server is not None:
        layers.insert(1, read_paste_server(server))
    # The file named by the highest-precedence source that names one.
    config = next(
        (c for layer in reversed(layers[1:]) if (c := layer.entries.get("config")) is not None),
        None,
    )
    if config is None and os.path.isfile(DEFAULT_CONFIG):
        # gunicorn reads ./gunicorn.conf.py when no source names a config file; a project
        # that relies on that must not lose its settings by switching.
        config = layers[0].entries["config"] = Entry(
            os.path.abspath(DEFAULT_CONFIG),
            "default",
            f"The default config file ./{DEFAULT_CONFIG}",
            f"gunicorn's default: ./{DEFAULT_CONFIG} in the working directory",
        )
    warnings: tuple[str, ...] = ()
    file_command: Command = "serve"
    if config is not None and config.value is not None:
        location = str(config.value)
        if is_python(location):
            from wsgid.settings.pyfile import read_python_file  # a gunicorn .py file only

            file_layer, warnings, file_command = read_python_file(location, config.given_by)
        else:
            file_layer = read_file(location, config.given_by)
        layers.insert(1, file_layer)
    # gunicorn's check_config / print_config (--check-config in GUNICORN_CMD_ARGS, or set in a
    # Python config file) check or print instead of serving, as under gunicorn, where a CI
    # step relies on it to exit. A command the command line names wins, then the higher source.
    command: Command = command_line.command
    if command == "serve":
        command = env_command if env_command != "serve" else file_command

    for layer in layers:
        validate_layer(layer)

    merged: dict[str, Entry] = {}
    for layer in layers:  # lowest precedence first; later layers overwrite
        merged.update(layer.entries)
    try:
        values = validate_values({name: e.value for name, e in merged.items()})
    except core.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        if loc and loc[0] in merged:
            raise ConfigError(_bad_value_message(merged[str(loc[0])], str(loc[0]), error)) from None
        # The settings the message names, or all of them if it names none.
        named = [n for n in merged if re.search(rf"\b{n}\b", _reason(error))] or list(merged)
        involved = ", ".join(f"{n} from {merged[n].label}" for n in named)
        raise ConfigError(
            f"The combined configuration is not valid: {_reason(error)} ({involved})."
        ) from None

    sources = {name: merged[name].label if name in merged else "default" for name in SPECS}
    warnings += _without_effect(values, sources)
    if server is not None:
        _pserve_serves_its_app(server, merged, values)
    elif command in ("serve", "check") and not (values["app"] or values["paste"]):
        raise ConfigError(
            "No application given. Name it as MODULE:CALLABLE: as the APP argument "
            "(wsgid myproject.wsgi:application), as app in the config file, or in WSGID_APP;"
            " or name a Paste Deploy file with --paste FILE.ini."
        )
    if values["paste"]:
        _logging_of_paste_file(values, merged, sources)
    return LoadedSettings(
        RuntimeSettings(**values),
        sources,
        command,
        command_line.json_output,
        command_line.show_secrets,
        warnings,
    )


def _without_effect(values: Mapping[str, Any], sources: dict[str, str]) -> tuple[str, ...]:
    """Settings given that the chosen worker kind does not use: valid, so a warning."""
    if values["request_timeout"] and values["worker_class"] == "sync":
        return (
            f"request_timeout {values['request_timeout']:g} (from {sources['request_timeout']})"
            " has no effect with worker_class sync: a sync worker runs one request at a time,"
            " which timeout bounds (past it the worker is replaced). Use timeout, or a kind"
            " that ends a request itself (gthread, gevent, eventlet, tornado).",
        )
    return ()
