"""The command line: the `wsgid` argparse parser, generated from the settings, and argv read
into a `Layer` and the command.

What this module owns:

- `build_parser`: one flag (or two, `--x`/`--no-x` for booleans) per setting, grouped as in
  the docs, each with its one-line help; `USAGE` and `EPILOG`, the rest of `--help`;
- `parse_command_line`: argv -> the command (`serve`, `check`, `config show`, `config
  schema`), its own options (`--json`, `--show-secrets`) and the settings given as flags,
  still as the strings typed (they are converted with the other sources, in `load.py`);
- the did-you-mean of a misspelt flag.

Every error is a `ConfigError`; argparse's own `--help` and `--version` are the one
exception: they print and raise `SystemExit(0)`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wsgid import __version__, build
from wsgid.runtime import Command, ConfigError
from wsgid.settings.fields import GROUPS
from wsgid.settings.sources import Entry, Layer, split_items
from wsgid.settings.specs import ALIASES, SPECS, SettingSpec, did_you_mean

USAGE = """\
wsgid [OPTIONS] [APP]              serve APP (MODULE:CALLABLE)
       wsgid check [OPTIONS] [APP]        validate the configuration and import the app
       wsgid config show [--json] [--show-secrets] [OPTIONS] [APP]
                                          print every effective setting and its source
       wsgid config schema                print the JSON Schema of the config file"""

EPILOG = """\
Every setting comes from, in increasing order of precedence: its built-in default, the TOML
file (-c/--config PATH, or WSGID_CONFIG), the environment variable WSGID_<NAME> (booleans
true/false/1/0/yes/no/on/off; lists comma-separated), then these flags.

exit status: 0 clean stop, 1 unexpected runtime error, 2 configuration or usage error,
3 a worker failed to boot, 4 the application could not be loaded, 5 a listener could not be
bound.

Reference: docs/configuration.md."""


@dataclass(frozen=True)
class _Given:
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

    def error(self, message: str) -> Any:  # argparse declares NoReturn; we raise instead
        raise ConfigError(f"Command line: {message}. See `wsgid --help`.")


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


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser, generated from the model: one group per settings group."""
    parser = _Parser(
        prog="wsgid",
        usage=USAGE,
        description="wsgid: a pre-fork WSGI HTTP/1.1 server daemon for UNIX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--json", action="store_true", help="With `config show`: print JSON instead of a table."
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
                "words", nargs="*", metavar=spec.option.metavar, help=_help_text(spec)
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
                help=_help_text(spec),
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
                help=_help_text(spec),
            )
        else:
            section.add_argument(
                *spec.flags,
                dest=spec.name,
                action=_RecordAppend if spec.option.repeatable else _Record,
                metavar=spec.option.metavar,
                default=argparse.SUPPRESS,
                help=_help_text(spec),
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


@dataclass(frozen=True)
class CommandLine:
    """What argv asks for: the command, its own options, and the settings given as flags."""

    command: Command
    json_output: bool
    show_secrets: bool
    layer: Layer


def parse_command_line(argv: Sequence[str]) -> CommandLine:
    """Read `argv` (without the program name); a bad one is a ConfigError naming the flag."""
    parser = build_parser()
    namespace, extras = parser.parse_known_intermixed_args(list(argv))
    for extra in extras:
        if extra.startswith("-"):
            hint = _flag_suggestion(parser, extra)
            suggestion = f" Did you mean {hint}?" if hint else ""
            raise ConfigError(
                f"Command line: unknown flag {extra}.{suggestion} See `wsgid --help`."
            )
    words: list[str] = list(namespace.words) + [e for e in extras if not e.startswith("-")]

    command: Command = "serve"
    if words[:1] == ["check"]:
        command, words = "check", words[1:]
    elif words[:1] == ["config"]:
        sub = words[1] if len(words) > 1 else None
        if sub == "show":
            command = "config-show"
        elif sub == "schema":
            command = "config-schema"
        else:
            problem = f'has no subcommand "{sub}"' if sub else "needs a subcommand"
            raise ConfigError(
                f"Command line: `wsgid config` {problem}; use `config show` or `config schema`. "
                f"(To serve a module named config, write config:app.)"
            )
        words = words[2:]
    implied_by: tuple[tuple[str, Command], ...] = (
        ("check_config", "check"),
        ("print_config", "config-show"),
    )
    for flag, implied in implied_by:
        if getattr(namespace, flag):
            if command not in ("serve", implied):
                raise ConfigError(
                    f"Command line: --{flag.replace('_', '-')} cannot be combined with the "
                    f"{command.replace('-', ' ')} subcommand."
                )
            command = implied
    for flag in ("json", "show_secrets"):
        if getattr(namespace, flag) and command != "config-show":
            raise ConfigError(
                f"Command line: --{flag.replace('_', '-')} only applies to `wsgid config show`."
            )
    if len(words) > 1:
        raise ConfigError(
            f"Command line: unexpected argument {words[1]!r}; only one APP may be given "
            f"(after {words[0]!r})."
        )

    entries: dict[str, Entry] = {}
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
            value = os.path.abspath(value)
        entries[name] = Entry(
            value, f"flag:{given.option}", f"Command-line flag {shown}", f"flag {given.option}"
        )
    return CommandLine(
        command, bool(namespace.json), bool(namespace.show_secrets), Layer("flag", entries)
    )
