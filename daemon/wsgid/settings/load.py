"""`load_settings`: every source read, validated on its own, then merged in order.

What this module owns: the order of the sources -- built-in defaults < config file
(`-c`/`--config`, `WSGID_CONFIG` or a `-c` in `GUNICORN_CMD_ARGS`; TOML, or a gunicorn Python
file) < `GUNICORN_CMD_ARGS` < `WSGID_<NAME>` environment < command line: gunicorn's order, with
wsgid's variables above gunicorn's --, where each effective value came from, and the message
of a value the model refuses: it names the source (file path and line, environment variable
or flag), the key, the bad value and what is accepted.

Each source is validated on its own before the merge, so a bad value is reported with the
source it came from even when a higher-precedence source would have overridden it: a typo in
the file should not lie in wait until the day the overriding flag is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from wsgid.pyconfig import is_python
from wsgid.runtime import ConfigError, LoadedSettings, RuntimeSettings
from wsgid.settings.cmdline import parse_command_line, read_gunicorn_cmd_args
from wsgid.settings.model import Settings
from wsgid.settings.pyfile import read_python_file
from wsgid.settings.sources import Entry, Layer, environment_defaults, read_environment, read_file
from wsgid.settings.specs import SPECS, format_value


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
        Settings.model_validate(values, strict=layer.kind == "file")
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            if not loc or loc[0] not in layer.entries:
                continue  # a cross-field rule; judged on the merged result
            name = str(loc[0])
            raise ConfigError(_bad_value_message(layer.entries[name], name, error)) from None


def _bad_value_message(entry: Entry, name: str, error: Mapping[str, Any]) -> str:
    spec = SPECS[name]
    loc = error["loc"]
    item = ""
    several = isinstance(entry.value, tuple) and len(entry.value) > 1
    if several and len(loc) > 1 and isinstance(loc[1], int):
        item = f" (item {format_value(error['input'])})"
    return (
        f"{entry.subject} is not valid{item}: {_reason(error)}. "
        f"Accepted for {name}: {spec.accepts}."
    )


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> LoadedSettings:
    """Build the effective settings from defaults, file, environment and `argv` (no program name).

    The model validates them; the result holds its `RuntimeSettings` copy, what the rest of
    wsgid reads. Raises ConfigError for any bad configuration; argparse's --help and
    --version print and raise SystemExit(0).
    """
    command_line = parse_command_line(argv)
    if command_line.command == "config-schema":
        # The schema describes the file format; it does not depend on any configuration.
        defaults = RuntimeSettings.copy_of(Settings())
        return LoadedSettings(defaults, dict.fromkeys(SPECS, "default"), "config-schema")

    if command_line.command == "config-import":
        # What it converts is the file alone; `wsgid.settings.convert` reads it.
        given = command_line.layer.entries.get("config")
        if given is None or given.value is None or not is_python(str(given.value)):
            raise ConfigError(
                "Command line: `wsgid config import` needs a gunicorn Python config file: "
                "wsgid config import gunicorn.conf.py (or python:MODULE)."
            )
        imported = RuntimeSettings.copy_of(Settings(config=given.value))
        sources = dict.fromkeys(SPECS, "default") | {"config": given.label}
        return LoadedSettings(imported, sources, "config-import")

    gunicorn_args = read_gunicorn_cmd_args(environ)
    wsgid_env = read_environment(environ)
    layers = [environment_defaults(environ), gunicorn_args, wsgid_env, command_line.layer]
    config = next(
        (c for layer in reversed(layers[1:]) if (c := layer.entries.get("config")) is not None),
        None,
    )
    warnings: tuple[str, ...] = ()
    if config is not None and config.value is not None:
        location = str(config.value)
        if is_python(location):
            file_layer, warnings = read_python_file(location, config.given_by)
        else:
            file_layer = read_file(location, config.given_by)
        layers.insert(1, file_layer)

    for layer in layers:
        validate_layer(layer)

    merged: dict[str, Entry] = {}
    for layer in layers:  # lowest precedence first; later layers overwrite
        merged.update(layer.entries)
    try:
        settings = Settings.model_validate({name: e.value for name, e in merged.items()})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        if loc and loc[0] in merged:
            raise ConfigError(_bad_value_message(merged[str(loc[0])], str(loc[0]), error)) from None
        involved = ", ".join(f"{n} from {e.label}" for n, e in merged.items())
        raise ConfigError(
            f"The combined configuration is not valid: {_reason(error)} ({involved})."
        ) from None

    sources = {name: merged[name].label if name in merged else "default" for name in SPECS}
    if command_line.command in ("serve", "check") and settings.app is None:
        raise ConfigError(
            "No application given. Name it as MODULE:CALLABLE: as the APP argument "
            "(wsgid myproject.wsgi:application), as app in the config file, or in WSGID_APP."
        )
    return LoadedSettings(
        RuntimeSettings.copy_of(settings),
        sources,
        command_line.command,
        command_line.json_output,
        command_line.show_secrets,
        warnings,
    )
