"""`wsgid config import`: a gunicorn Python config file printed as the equivalent TOML.

What this module owns: turning what a Python config gives (`pyfile.scan`) into a TOML file
wsgid reads the same way, grouped in the tables of config/app.toml, and saying in comments
what could not be carried over:

- a value the file computed (`workers = multiprocessing.cpu_count() * 2 + 1`) is written as the
  number it gave here, with the expression in a comment;
- a hook function becomes an import string, MODULE:FUNCTION, when it can be imported: when it
  was imported into the file from a module, or when the file itself can be imported as a
  module from the working directory (`conf/wsgid_hooks.py` as `conf.wsgid_hooks`; not
  `gunicorn.conf.py`, whose name is not a module's). Otherwise a comment says why and what to do;
- a gunicorn setting wsgid lacks, and the file's own helper names, are listed in comments.

The values go through the settings model first, so what is printed is what wsgid would use,
in its normal spelling, and a bad value is refused here with the same message as when serving.
"""

from __future__ import annotations

import importlib.util
import os
import string
import sys
import textwrap
from typing import Any

from pydantic import ValidationError

from wsgid import pyconfig
from wsgid.runtime import ConfigError
from wsgid.settings.fields import GROUPS
from wsgid.settings.load import validate_layer
from wsgid.settings.model import Settings
from wsgid.settings.pyfile import Found, Scan, scan, setting_value, shown
from wsgid.settings.sources import Entry, Layer
from wsgid.settings.specs import (
    COMMAND_SETTINGS,
    GUNICORN_ONLY,
    GUNICORN_TABLE,
    SPECS,
    NotTOML,
    toml_value,
)


def _config_module(result: Scan) -> tuple[str | None, str]:
    """The module name the config can be imported under from the working directory, or why
    it cannot be."""
    if result.location.startswith(pyconfig.MODULE_PREFIX):
        return result.location[len(pyconfig.MODULE_PREFIX) :], ""
    path = result.path or result.location
    cwd = os.getcwd()
    relative = os.path.relpath(path, cwd)
    if relative.startswith(os.pardir + os.sep):
        return None, f"it is outside the working directory ({cwd})"
    parts = relative[: -len(".py")].split(os.sep)
    dotted = ".".join(parts)
    if not all(part.isidentifier() for part in parts):
        return None, f"its name, {dotted}, is not a module name"
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(dotted)
    except (ImportError, ValueError) as exc:
        return None, f"importing it as {dotted} fails ({exc})"
    origin = spec.origin if spec is not None else None
    if origin is None or os.path.realpath(origin) != os.path.realpath(path):
        found = f"finds {origin}" if origin else "finds nothing"
        return None, f"the module name {dotted} {found} instead"
    return dotted, ""


def _importable(func: Any) -> str | None:
    """MODULE:FUNCTION for a function the config imported from a module, if it resolves."""
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module_name or not qualname or module_name == pyconfig.CONFIG_MODULE:
        return None
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return f"{module_name}:{qualname}" if obj is func else None


def _hook_import(found: Found, module: tuple[str | None, str]) -> str | None:
    """The import string of a hook given as a function, if it has one."""
    spec = _importable(found.value)
    if spec is None and module[0] is not None:
        spec = f"{module[0]}:{found.name}"
    return spec


def _comment(text: str) -> list[str]:
    """`text` as TOML comment lines. What it quotes came from the file (a path, an expression,
    an object's repr), so line breaks become spaces (textwrap) and any other control
    character, which TOML refuses even in a comment, is escaped."""
    text = "".join(
        c if c.isprintable() else " " if c in string.whitespace else ascii(c)[1:-1] for c in text
    )
    return textwrap.wrap(
        text,
        width=95,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,  # a long path stays whole, to be copied
        break_on_hyphens=False,
    )


def _not_toml_note(result: Scan, name: str, exc: NotTOML) -> list[str]:
    """The comment standing for a setting whose value TOML cannot express."""
    file = os.path.basename(result.path or result.location)
    note = (
        f"{name} left out: its value holds {shown(exc.value)} (at {name}{exc.where}), which "
        f"TOML cannot express, so a TOML file cannot carry this setting. Keep it in a Python "
        f"config (keep running wsgid -c {file}), or write it in a form TOML holds"
    )
    if name == "logconfig_dict":
        # dictConfig resolves both string forms itself, so the TOML table can say the same.
        note += (
            ': logging.config.dictConfig takes "ext://sys.stdout" for a stream and a dotted '
            'name ("myproject.logs.HealthFilter") for a "()" factory'
        )
    return _comment(note + ".")


def _hooks_note(result: Scan, names: list[str], reason: str) -> list[str]:
    """The comment saying why hook functions could not be written as import strings."""
    file = os.path.basename(result.path or result.location)
    example = "; ".join(f'{name} = "hooks:{name}"' for name in names)
    return _comment(
        f"Hook functions of {file} left out: {', '.join(names)}. A hook in TOML is an import "
        f"string, MODULE:FUNCTION, and {file} cannot be imported as a module: {reason}. Move "
        f"them to a module (hooks.py beside it, say) and write {example}; or keep running "
        f"wsgid -c {file}, which runs them."
    )


def import_python_config(location: str, given_by: str) -> str:
    """The TOML equivalent of the Python config at `location`; ConfigError for a bad one."""
    environ, path = dict(os.environ), list(sys.path)
    result = scan(location, given_by)
    # What the file did to the process beside its names (`wsgid -c FILE.py` does it too): the
    # directories it put on sys.path are the pythonpath setting; the environment it set, TOML
    # cannot set for the master, and is said in a comment, by name (a value may be a secret).
    environ_set = sorted(
        {name for name, value in os.environ.items() if environ.get(name) != value}
        | {name for name in environ if name not in os.environ}
    )
    added = [d for d in sys.path if d not in path and d != os.getcwd()]
    entries: dict[str, Entry] = {}
    hook_lines: dict[str, str] = {}
    unwritable: list[str] = []  # hook functions without an import string
    module: tuple[str | None, str] | None = None  # found when a hook function needs it
    for found in result.settings:
        if SPECS[found.name].option.group == "hooks" and callable(found.value):
            module = module or _config_module(result)
            reference = _hook_import(found, module)
            if reference is None:
                unwritable.append(found.name)
            else:
                hook_lines[found.name] = f"{found.name} = {toml_value(reference)}"
            continue
        entries[found.name] = Entry(
            setting_value(result, found),
            result.label(found),
            f"{result.where(found)}: {found.name} = {shown(found.value)}",
        )
    if added:
        given = entries.get("pythonpath")
        paths = [*(given.value if given is not None else ()), *added]
        entries["pythonpath"] = Entry(
            tuple(dict.fromkeys(paths)),
            f"file:{result.path or result.location}",
            f"{result.heading}: the directories it puts on sys.path",
        )
    layer = Layer("python", entries)
    validate_layer(layer)
    try:
        model = Settings.model_validate({name: e.value for name, e in entries.items()})
    except ValidationError as exc:
        raise ConfigError(
            f"{result.heading}: the settings are not valid together: {exc.errors()[0]['msg']}."
        ) from None
    computed = {f.name: f.computed for f in result.settings if f.computed}

    out = [
        *_comment(f"Converted by `wsgid config import` from {result.shown}."),
        "# Check it with `wsgid check -c FILE APP`; `wsgid config show -c FILE` prints each",
        "# setting and where it came from. Hook import strings are found from the working",
        "# directory wsgid runs in (or PYTHONPATH).",
    ]
    for group in GROUPS:
        if not group.table:
            continue
        lines: list[str] = []
        for name, spec in SPECS.items():
            if spec.option.group != group.name:
                continue
            if name in hook_lines:
                lines.append(hook_lines[name])
                continue
            if name not in entries:
                continue
            value = getattr(model, name)
            try:
                line = f"{name} = {toml_value(value, octal=spec.option.octal)}"
            except NotTOML as exc:
                if value is not None:  # None is every optional setting's default: nothing lost
                    lines += _not_toml_note(result, name, exc)
                continue
            if name in computed:
                lines += _comment(f"computed by the file when converted: {computed[name]}")
            lines.append(line)
        if group.name == "hooks" and unwritable and module is not None:
            lines += _hooks_note(result, unwritable, module[1])
        if lines:
            out += ["", f"[{group.name}]", *lines]
    missing = [f for f in result.gunicorn_only if f.name not in COMMAND_SETTINGS]
    if missing:
        out += ["", f"# gunicorn settings wsgid does not have, left out ({GUNICORN_TABLE}):"]
        for found in missing:
            out += _comment(f"{found.name} = {shown(found.value)}: {GUNICORN_ONLY[found.name]}.")
    commands = [f for f in result.gunicorn_only if f.name in COMMAND_SETTINGS]
    if commands:
        out += ["", "# gunicorn settings that are wsgid commands, left out:"]
        for found in commands:
            command = COMMAND_SETTINGS[found.name].replace("-", " ")
            out += _comment(f"{found.name} = {shown(found.value)}: `wsgid {command}`.")
    if environ_set:
        file = os.path.basename(result.path or result.location)
        out += [
            "",
            *_comment(
                f"{file} sets these environment variables, which a TOML file cannot: "
                f"{', '.join(environ_set)}. Set them where wsgid starts (the service's "
                f'environment), or for the app only with raw_env = ["NAME=value"] in '
                f"[application]; or keep running wsgid -c {file}, which sets them."
            ),
        ]
    if result.helpers or result.close:
        names = ", ".join(
            [f"{found.name} (did you mean {hint}?)" for found, hint in result.close]
            + [found.name for found in result.helpers]
        )
        out += ["", *_comment(f"Names of the file that are not settings, left out: {names}.")]
    return "\n".join(out) + "\n"
