"""The settings as data: one `SettingSpec` per field of the model, from the generated table.

What this module owns:

- `SettingSpec` and `SPECS`: for every setting, what the generators (command line, sources,
  schema, docs, `config show`) need: its name, environment variable, table, flags, default,
  what it accepts, and whether it is a list, a boolean, a table or optional;
- `format_value`: a value as TOML would spell it, for messages, docs and `config show`, and
  `toml_value`, the same for a TOML file (`NotTOML` for what TOML cannot hold);
- the did-you-mean of a misspelt setting name (`ALIASES`, `did_you_mean`);
- gunicorn's names that are not wsgid settings: another name of one (`RENAMED`), the ones
  that are wsgid commands (`COMMAND_SETTINGS`), the settings refused by name, with the
  reason (`REFUSED`, `refused`), and the ones wsgid does not have, with the reason or what to
  use instead (`GUNICORN_ONLY`, `gunicorn_only`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from wsgid.runtime import Command
from wsgid.settings import table
from wsgid.settings.fields import ENV_PREFIX, GROUPS_BY_NAME, Group, Option


class SettingSpec(NamedTuple):
    """Everything the generators need about one setting, read from its field when the table
    was rendered (`wsgid.settings.tablegen`)."""

    name: str
    option: Option
    is_list: bool
    is_bool: bool
    is_table: bool
    is_optional: bool
    # The default value; a table's is copied for each caller (`default`).
    default_value: Any
    # The field's description, or else the docstring under it, as one line.
    description: str
    # What it accepts, in words: its Option's, or else said of its type and bounds.
    accepts: str

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def group(self) -> Group:
        return GROUPS_BY_NAME[self.option.group]

    @property
    def table(self) -> str | None:
        return self.option.group if self.group.table else None

    @property
    def flags(self) -> tuple[str, ...]:
        """The option strings that set it: its Option's, or else its name dashed."""
        if self.option.flags is None:
            return ("--" + self.name.replace("_", "-"),)
        return self.option.flags

    @property
    def long_flag(self) -> str | None:
        return next((f for f in self.flags if f.startswith("--")), None)

    @property
    def default(self) -> Any:
        return copy.deepcopy(self.default_value)

    @property
    def summary(self) -> str:
        """The first sentence of the description, for `--help`."""
        text = self.description
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]

    @property
    def default_text(self) -> str:
        if self.option.default_doc:
            return self.option.default_doc
        return format_value(self.default, octal=self.option.octal)


SPECS: Mapping[str, SettingSpec] = {row[0]: SettingSpec(*row) for row in table.ROWS}
# The settings a configuration file may hold (all but `config`, which names the file).
FILE_SPECS = {n: s for n, s in SPECS.items() if s.option.in_file}


def format_value(value: Any, *, octal: bool = False) -> str:
    """A value as it would be written in TOML, for messages, docs and `config show`: None,
    which TOML lacks, as `(unset)`, and any other object TOML cannot hold (a class or a stream
    a Python config file gave) as Python prints it."""
    return _format(value, octal, "", strict=False)


class NotTOML(ValueError):
    """`toml_value` met something TOML cannot hold: `value`, at `where` in the value given
    (`["filters"]["f"]["()"]`, or "" for the value itself)."""

    def __init__(self, where: str, value: Any) -> None:
        super().__init__(f"TOML cannot hold {value!r}" + (f" at {where}" if where else ""))
        self.where = where
        self.value = value


def toml_value(value: Any, *, octal: bool = False) -> str:
    """`value` written in TOML, to be read back by a TOML parser; NotTOML for what TOML cannot
    hold at any depth (None, an object other than a string, number, boolean, list or table,
    a key that is not a string, a string that is not Unicode)."""
    return _format(value, octal, "", strict=True)


# A key TOML reads as written; any other (`gunicorn.error`, `()`) is quoted, since a dot in
# a bare key would make nested tables of it.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Lone surrogates: what os.fsdecode makes of undecodable bytes; not Unicode, so not TOML.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _format(value: Any, octal: bool, where: str, *, strict: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and octal:
        return f"0o{value:03o}"
    if isinstance(value, int):
        return repr(int(value))  # an int subclass (an IntEnum) may print otherwise
    if isinstance(value, float):
        return repr(float(value))  # inf and nan are TOML's spelling too
    if isinstance(value, str):
        if strict and _SURROGATE.search(value):  # a file name's undecodable bytes
            raise NotTOML(where, value)
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        items = (_format(v, False, f"{where}[{i}]", strict=strict) for i, v in enumerate(value))
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            if strict and not isinstance(key, str):
                raise NotTOML(where, key)
            inner = _format(item, False, f"{where}[{key!r}]", strict=strict)
            pairs.append(f"{_toml_key(str(key))} = {inner}")
        return "{" + ", ".join(pairs) + "}"
    if strict:
        raise NotTOML(where, value)
    return "(unset)" if value is None else str(value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else _escape(c) for c in escaped)
    return f'"{escaped}"'


def _escape(char: str) -> str:
    # TOML's \u takes exactly four hex digits; a character past U+FFFF needs \U and eight.
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# --------------------------------------------------------------------------------------------
# Did-you-mean
# --------------------------------------------------------------------------------------------


def _aliases() -> dict[str, str]:
    """Spellings a user may reach for, mapped to the setting's real name.

    Besides the names themselves, each long flag spelled as a key (`--keep-alive` ->
    `keep_alive`, `--access-logfile` -> `access_logfile`) points back to its setting, so the
    hint for a gunicorn user's guess is the right setting rather than the nearest string.
    """
    aliases: dict[str, str] = {}
    for name, spec in SPECS.items():
        for flag in spec.flags:
            if flag.startswith("--"):
                aliases.setdefault(flag[2:].replace("-", "_"), name)
                aliases.setdefault(flag[2:].replace("-", ""), name)
    aliases.update({name: name for name in SPECS})
    return aliases


ALIASES = _aliases()

# gunicorn's other names of a wsgid setting, accepted wherever the setting is: the file
# (and the environment, `WSGID_WSGI_APP`). The two names are one setting; a source that
# gives both is refused, since neither would be a sure guess.
RENAMED: Mapping[str, str] = {"wsgi_app": "app"}

# gunicorn settings that ask for a command instead of serving (gunicorn checks, or prints,
# and exits), and that command: the flags --check-config and --print-config, a
# GUNICORN_CMD_ARGS holding them, and `check_config = True` in a Python config file.
COMMAND_SETTINGS: Mapping[str, Command] = {"check_config": "check", "print_config": "config-show"}

# gunicorn settings wsgid refuses by name, whatever the value, and why (the message says it).
REFUSED: Mapping[str, str] = {
    "strip_header_spaces": (
        "wsgid never accepts whitespace between a header name and its colon (RFC 9112"
        " §5.1: 400), because stripping it lets a request smuggle a header past a proxy"
        ' that reads "Host : x" differently (gunicorn deprecates the setting for that'
        " reason); remove the setting"
    ),
}


def refused(name: str, subject: str) -> str | None:
    """The message refusing the gunicorn setting `name` (given as `subject`), if it is one."""
    reason = REFUSED.get(name)
    return None if reason is None else f"{subject} is refused: {reason}."


# Where the table of gunicorn's settings says what wsgid does about each, at more length.
GUNICORN_TABLE = "docs/gunicorn.md"

_ASGI = "wsgid serves WSGI only (an ASGI application needs an ASGI server: uvicorn, hypercorn)"
_HTTP2 = "wsgid speaks HTTP/1.1 to the proxy in front of it, and the proxy speaks HTTP/2 to clients"
_DIRTY = (
    "gunicorn's dirty workers are out of scope (long-running work belongs in a task queue"
    " beside the application)"
)

# gunicorn settings wsgid does not have, each with the reason, or what to use instead: the
# one text that an unknown flag, an unknown key of the file or WSGID_ variable, and a Python
# config file's warning give for it (docs/gunicorn.md says the same at more length). A
# did-you-mean would send a gunicorn user to an unrelated setting (--protocol to
# --proxy-protocol). Written to follow "... does not have: ", without a final period.
GUNICORN_ONLY: Mapping[str, str] = {
    "asgi_loop": _ASGI,
    "asgi_lifespan": _ASGI,
    "asgi_disconnect_grace_period": _ASGI,
    "websocket_max_message_size": _ASGI,
    "root_path": (
        "it is ASGI's (a WSGI application's prefix is SCRIPT_NAME, which a trusted proxy can"
        " send: see forwarder_headers)"
    ),
    "http_parser": "wsgid has one HTTP parser, llhttp (through httptools), with its own checks",
    "protocol": (
        "wsgid speaks only HTTP/1.1, not the uwsgi protocol (point the proxy at it over HTTP:"
        " nginx's proxy_pass, not uwsgi_pass)"
    ),
    "uwsgi_allow_ips": "wsgid speaks only HTTP/1.1, not the uwsgi protocol",
    "permit_obsolete_folding": "obsolete line folding is always refused (400, RFC 9112 §5.2)",
    "permit_unconventional_http_method": (
        "a method is judged by RFC 9110's token grammar only (a well-formed one wsgid does"
        " not know gets 501), so there is nothing unconventional to permit"
    ),
    "permit_unconventional_http_version": (
        "HTTP/1.0 and HTTP/1.1 are served, and a later HTTP/1.x (1.2 to 1.9) as HTTP/1.1"
        " (RFC 9112 §2.3); another well-formed version gets 505"
    ),
    "casefold_http_method": "methods are case-sensitive (RFC 9110 §9.1), as clients send them",
    "tolerate_dangerous_framing": (
        "a request with both Content-Length and Transfer-Encoding is always refused (400), as"
        " it can smuggle a request past a proxy (gunicorn 22.0's switch, removed in 23.0)"
    ),
    "http_protocols": _HTTP2,
    "http2_cleartext": _HTTP2,
    "http2_max_concurrent_streams": _HTTP2,
    "http2_initial_window_size": _HTTP2,
    "http2_max_frame_size": _HTTP2,
    "http2_max_header_list_size": _HTTP2,
    "dirty_apps": _DIRTY,
    "dirty_workers": _DIRTY,
    "dirty_timeout": _DIRTY,
    "dirty_threads": _DIRTY,
    "dirty_graceful_timeout": _DIRTY,
    "on_dirty_starting": _DIRTY,
    "dirty_post_fork": _DIRTY,
    "dirty_worker_init": _DIRTY,
    "dirty_worker_exit": _DIRTY,
}

# gunicorn's flags of those settings that are not the setting's name dashed, as names.
GUNICORN_ONLY_FLAGS: Mapping[str, str] = {
    "dirty_app": "dirty_apps",
    "uwsgi_allow_from": "uwsgi_allow_ips",
}


def gunicorn_only(name: str, where: str) -> str | None:
    """`WHERE: NAME is a gunicorn setting wsgid does not have (...): REASON`, if `name` is
    one, without a final period: the caller says what becomes of it."""
    reason = GUNICORN_ONLY.get(name)
    if reason is None:
        return None
    return f"{where}: {name} is a gunicorn setting wsgid does not have ({GUNICORN_TABLE}): {reason}"


def did_you_mean(word: str, candidates: Mapping[str, str], cutoff: float = 0.6) -> str | None:
    """The candidate value whose key is `word` or closest to it, if any is close enough
    (`cutoff`: difflib's similarity ratio, from 0 to 1)."""
    folded = word.lower()
    if folded in candidates:
        return candidates[folded]
    import difflib  # a mistake's hint only

    close = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=cutoff)
    return candidates[close[0]] if close else None
