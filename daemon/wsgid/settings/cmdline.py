"""The command line: the `wsgid` argparse parser, generated from the settings, and argv read
into a `Layer` and the command.

What this module owns:

- `build_parser`: one flag (or two, `--x`/`--no-x` for booleans) per setting, grouped as in
  the docs, each with its one-line help; `USAGE` and `EPILOG`, the rest of `--help`;
- `parse_command_line`: argv -> the command (`serve`, `check`, `config show`, `config
  schema`, `config import`), its own options (`--json`, `--show-secrets`) and the settings
  given as flags, still as the strings typed (they are converted with the other sources, in
  `load.py`);
- `read_gunicorn_cmd_args`: gunicorn's `GUNICORN_CMD_ARGS`, flags in one environment
  variable, split as a shell would and read by the same parser into a `Layer` of its own;
- the did-you-mean of a misspelt flag, the reason a refused gunicorn flag
  (`--strip-header-spaces`) is refused, and why wsgid lacks a gunicorn flag's setting
  (`--protocol`).

Every error is a `ConfigError`; argparse's own `--help` and `--version` are the one
exception: they print and raise `SystemExit(0)`.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from wsgid import __version__, build
from wsgid.runtime import Command, ConfigError
from wsgid.settings.fields import GROUPS
from wsgid.settings.sources import Entry, Layer, config_location, split_items
from wsgid.settings.specs import (
    ALIASES,
    COMMAND_SETTINGS,
    GUNICORN_ONLY_FLAGS,
    SPECS,
    SettingSpec,
    did_you_mean,
    gunicorn_only,
    refused,
)

USAGE = """\
wsgid [OPTIONS] [APP]              serve APP (MODULE:CALLABLE)
       wsgid check [OPTIONS] [APP]        validate the configuration and import the app
       wsgid config show [--json] [--show-secrets] [OPTIONS] [APP]
                                          print every effective setting and its source
       wsgid config schema                print the JSON Schema of the config file
       wsgid config import FILE.py        print a gunicorn Python config file as TOML
       wsgid status [--json] [OPTIONS]    show what each worker is doing (control_socket)"""

EPILOG = """\
Every setting comes from, in increasing order of precedence: its built-in default, the config
file (-c/--config PATH, or WSGID_CONFIG: TOML, or a gunicorn Python file, *.py or
python:MODULE), GUNICORN_CMD_ARGS (flags, as gunicorn reads them), the environment variable
WSGID_<NAME> (booleans true/false/1/0/yes/no/on/off; lists comma-separated), then these flags.

exit status: 0 clean stop, 1 unexpected runtime error, 2 configuration or usage error,
3 a worker failed to boot, 4 the application could not be loaded, 5 a listener could not be
bound.

Reference: docs/configuration.md."""


class _Given(NamedTuple):
    """A flag as given: the option string typed and the raw value of each occurrence."""

    option: str
    raw: tuple[str, ...]


class _Record(argparse.Action):
    """Store the raw string and the option string; conversion happens with the other sources."""

    appends = False  # each occurrence replaces the previous one, as in gunicorn

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        option = option_string or self.dest
        previous = getattr(namespace, self.dest, None)
        items = previous.raw if (self.appends and isinstance(previous, _Given)) else ()
        setattr(namespace, self.dest, _Given(option, (*items, self.raw(values, option))))

    def raw(self, values: str | Sequence[Any] | None, option: str) -> str:
        """The string one occurrence gives."""
        return values if isinstance(values, str) else ""


class _RecordAppend(_Record):
    """A repeatable flag (`-b`, `-e`): each occurrence adds an item."""

    appends = True


class _RecordBool(_Record):
    """`--preload` / `--no-preload`: a boolean that a later source can also turn off."""

    def raw(self, values: str | Sequence[Any] | None, option: str) -> str:
        return "false" if option.startswith("--no-") else "true"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become ConfigError, so they reach the user like the rest."""

    # What the arguments are, to open an error message.
    where = "Command line"

    def error(self, message: str) -> Any:  # argparse declares NoReturn; we raise instead
        raise ConfigError(f"{self.where}: {message}. See `wsgid --help`.")


def _help_text(spec: SettingSpec) -> str:
    default = spec.default
    if spec.option.default_doc:
        shown = f" Default: {spec.option.default_doc}."
    elif default is None or default == ():
        shown = ""  # "unset" or "empty" is what a reader assumes anyway
    elif isinstance(default, str):
        shown = f" Default: {default}."  # unquoted: help is prose, not TOML
    else:
        shown = f" Default: {spec.default_text}."
    text = f"{spec.summary}{shown} Env: {spec.env_var}."
    return text.replace("%", "%%")  # argparse %-formats help strings


# A setting's help is written only when `--help` is printed (`_HelpFormatter`): its text comes
# from the setting's docstring, which no start needs to read. Its place in the parser holds
# this prefix and the setting's name.
_SETTING_HELP = "\0setting:"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # The hook argparse's own ArgumentDefaultsHelpFormatter overrides.
        text = action.help
        if text is not None and text.startswith(_SETTING_HELP):
            return _help_text(SPECS[text[len(_SETTING_HELP) :]])
        return text


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser, generated from the model: one group per settings group."""
    parser = _Parser(
        prog="wsgid",
        usage=USAGE,
        description="wsgid: a pre-fork WSGI HTTP/1.1 server daemon for UNIX.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
        add_help=False,
    )
    sections = {g.name: parser.add_argument_group(g.title, g.description) for g in GROUPS}
    general = sections["general"]
    general.add_argument("-h", "--help", action="help", help="Show this help and exit.")
    general.add_argument(
        "-v",
        "--version",
        action="version",
        version=f"wsgid {__version__} ({build()})",
        help="Show version.",
    )
    general.add_argument(
        "--check-config",
        action="store_true",
        help="Same as `wsgid check`: validate the configuration, import the app, exit.",
    )
    general.add_argument(
        "--print-config",
        action="store_true",
        help="Same as `wsgid config show`: print the effective settings and exit.",
    )
    general.add_argument(
        "--json",
        action="store_true",
        help="With `config show` and `status`: print JSON instead of a table.",
    )
    general.add_argument(
        "--show-secrets",
        action="store_true",
        help=(
            "With `config show`: print secrets as they are (raw_env values, passwords, tokens "
            "and DSNs in logconfig_dict, passwords in URLs) instead of masking them."
        ),
    )
    for spec in SPECS.values():
        section = sections[spec.option.group]
        if spec.option.positional:
            # The positional also carries the subcommand words, so it is parsed as a list.
            section.add_argument(
                "words", nargs="*", metavar=spec.option.metavar, help=_SETTING_HELP + spec.name
            )
        if not spec.flags:
            continue
        if spec.is_bool:
            flags = list(spec.flags)
            long = spec.long_flag
            if long:
                flags.append("--no-" + long[2:])
            section.add_argument(
                *flags,
                dest=spec.name,
                action=_RecordBool,
                nargs=0,
                default=argparse.SUPPRESS,
                help=_SETTING_HELP + spec.name,
            )
        elif spec.option.bare is not None:
            section.add_argument(  # `--proxy-protocol` alone, or with a MODE
                *spec.flags,
                dest=spec.name,
                action=_Record,
                nargs="?",
                const=spec.option.bare,
                metavar=spec.option.metavar,
                default=argparse.SUPPRESS,
                help=_SETTING_HELP + spec.name,
            )
        else:
            section.add_argument(
                *spec.flags,
                dest=spec.name,
                action=_RecordAppend if spec.option.repeatable else _Record,
                metavar=spec.option.metavar,
                default=argparse.SUPPRESS,
                help=_SETTING_HELP + spec.name,
            )
    return parser


def _flag_suggestion(parser: argparse.ArgumentParser, typed: str) -> str | None:
    option, _, _ = typed.partition("=")
    candidates: dict[str, str] = {}
    for action in parser._actions:  # argparse has no public list of option strings
        for flag in action.option_strings:
            candidates[flag.lower()] = flag
    for alias, name in ALIASES.items():
        long = SPECS[name].long_flag
        if long:
            candidates.setdefault("--" + alias.replace("_", "-"), long)
    return did_you_mean(option, candidates)


class CommandLine(NamedTuple):
    """What argv asks for: the command, its own options, and the settings given as flags."""

    command: Command
    json_output: bool
    show_secrets: bool
    layer: Layer
    by_flag: bool = False  # the command came from --check-config or --print-config


def parse_command_line(argv: Sequence[str], where: str = "Command line") -> CommandLine:
    """Read `argv` (without the program name); a bad one is a ConfigError naming the flag.

    `where` names the arguments in messages: the command line, or the environment variable
    that held them (GUNICORN_CMD_ARGS).
    """
    parser = build_parser()
    assert isinstance(parser, _Parser)
    parser.where = where
    namespace, extras = parser.parse_known_intermixed_args(list(argv))
    for extra in extras:
        if extra.startswith("-"):
            flag = extra.partition("=")[0]
            subject = f"Command-line flag {flag}" if where == "Command line" else f"{where}: {flag}"
            name = flag.lstrip("-").replace("-", "_")
            message = refused(name, subject)
            if message is not None:
                raise ConfigError(message)
            # Before the did-you-mean: gunicorn's flag of a setting wsgid lacks is no typo.
            missing = gunicorn_only(GUNICORN_ONLY_FLAGS.get(name, name), subject)
            if missing is not None:
                raise ConfigError(f"{missing}; remove the flag.")
            hint = _flag_suggestion(parser, extra)
            suggestion = f" Did you mean {hint}?" if hint else ""
            raise ConfigError(f"{where}: unknown flag {extra}.{suggestion} See `wsgid --help`.")
    words: list[str] = list(namespace.words) + [e for e in extras if not e.startswith("-")]

    command: Command = "serve"
    if words[:1] == ["check"]:
        command, words = "check", words[1:]
    elif words[:1] == ["status"]:
        command, words = "status", words[1:]
    elif words[:1] == ["config"]:
        sub = words[1] if len(words) > 1 else None
        if sub == "show":
            command = "config-show"
        elif sub == "schema":
            command = "config-schema"
        elif sub == "import":
            command = "config-import"
        else:
            problem = f'has no subcommand "{sub}"' if sub else "needs a subcommand"
            raise ConfigError(
                f"Command line: `wsgid config` {problem}; use `config show`, `config schema` "
                f"or `config import`. (To serve a module named config, write config:app.)"
            )
        words = words[2:]
    words_command = command
    for flag, implied in COMMAND_SETTINGS.items():
        if getattr(namespace, flag):
            if command not in ("serve", implied):
                raise ConfigError(
                    f"{where}: --{flag.replace('_', '-')} cannot be combined with the "
                    f"{command.replace('-', ' ')} subcommand."
                )
            command = implied
    if namespace.json and command not in ("config-show", "status"):
        raise ConfigError(
            f"{where}: --json only applies to `wsgid config show` and `wsgid status`."
        )
    if namespace.show_secrets and command != "config-show":
        raise ConfigError(f"{where}: --show-secrets only applies to `wsgid config show`.")

    entries: dict[str, Entry] = {}
    if command == "config-import" and words:
        # `config import FILE.py`: the word is the file to convert, not an APP.
        entries["config"] = Entry(
            config_location(words[0]),
            "flag:FILE",
            f'Command-line argument FILE "{words[0]}"',
            "the command line",
        )
        words = words[1:]
    if len(words) > 1:
        raise ConfigError(
            f"{where}: unexpected argument {words[1]!r}; only one APP may be given "
            f"(after {words[0]!r})."
        )
    if words:
        app_spec = next(s for s in SPECS.values() if s.option.positional)
        entries[app_spec.name] = Entry(
            words[0], "flag:APP", f'Command-line argument APP "{words[0]}"'
        )
    for name, spec in SPECS.items():
        given = getattr(namespace, name, None)
        if not isinstance(given, _Given):
            continue
        value: Any
        if spec.is_list or spec.option.repeatable:  # a repeatable table: KEY=VALUE items
            value = tuple(i for raw in given.raw for i in split_items(spec, raw, always=False))
            shown = " ".join(f'{given.option} "{raw}"' for raw in given.raw)
        else:
            value = given.raw[-1]
            shown = given.option if spec.is_bool else f'{given.option} "{value}"'
        if name == "config":
            if not value.strip():  # abspath("") would name the working directory
                raise ConfigError(f"{where}: {given.option} needs a file path; it was empty.")
            value = config_location(value)
        entries[name] = Entry(
            value, f"flag:{given.option}", f"Command-line flag {shown}", f"flag {given.option}"
        )
    return CommandLine(
        command,
        bool(namespace.json),
        bool(namespace.show_secrets),
        Layer("flag", entries),
        command != words_command,
    )


# gunicorn's environment variable of extra command-line flags (Docker images and buildpacks
# set it).
GUNICORN_CMD_ARGS = "GUNICORN_CMD_ARGS"


def read_gunicorn_cmd_args(environ: Mapping[str, str]) -> tuple[Layer, Command]:
    """The settings `GUNICORN_CMD_ARGS` gives, read as gunicorn reads them, and the command
    its --check-config or --print-config asks for ("serve" without them).

    It is split as a shell would (shlex) and parsed by the command-line parser, so it takes
    every flag the command line does. It holds flags only: an APP or a subcommand there
    is an error (gunicorn ignores an APP in it, which would hide the mistake).
    """
    raw = environ.get(GUNICORN_CMD_ARGS)
    if raw is None or not raw.strip():
        return Layer("env", {}), "serve"
    where = f"Environment variable {GUNICORN_CMD_ARGS}"
    try:
        argv = shlex.split(raw)
    except ValueError as exc:
        raise ConfigError(
            f'{where}="{raw}" cannot be split into arguments as a shell would: {exc}.'
        ) from None
    parsed = parse_command_line(argv, where=where)
    extra = next((e for e in parsed.layer.entries.values() if e.label == "flag:APP"), None)
    if extra is not None or (parsed.command != "serve" and not parsed.by_flag):
        raise ConfigError(
            f'{where}="{raw}" holds more than flags of settings; it may only hold flags like '
            f"--workers 3 (give the application and the command on the command line)."
        )
    entries = {
        name: Entry(
            entry.value,
            f"env:{GUNICORN_CMD_ARGS}",
            entry.subject.replace("Command-line flag", f"{where}: flag", 1),
            f"environment variable {GUNICORN_CMD_ARGS}",
        )
        for name, entry in parsed.layer.entries.items()
    }
    return Layer("env", entries), parsed.command
