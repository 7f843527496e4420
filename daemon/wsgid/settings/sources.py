"""Where settings come from besides the command line: the platform's defaults, the
`WSGID_*` environment, the TOML file and the server section of a paste file (`pserve`), each
read into a `Layer` of `Entry`s. (A gunicorn Python config file is read by `pyfile.py`, into a
`Layer` too.)

What this module owns: reading each of those sources into the values it gives (not yet
validated) and, for each value, what an error message needs to point at it: the source,
the key and the value as the user wrote them. The unknown keys and variables are reported
here, with a did-you-mean, or, for a gunicorn setting wsgid does not have, with why;
gunicorn's other name of a setting (`wsgi_app`) is read as that setting, and a setting wsgid
refuses (`strip_header_spaces`) is reported with its reason.
`cmdline.py` reads the flags into a `Layer` too; `load.py` validates and merges the layers.

Nothing here reads `os.environ`: the environment is passed in, so a HUP reload and the tests
see exactly what they pass.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from wsgid.pyconfig import MODULE_PREFIX, strip_file_prefix
from wsgid.runtime import MAX_WORKERS, ConfigError
from wsgid.settings.fields import ENV_PREFIX, TABLES
from wsgid.settings.specs import (
    ALIASES,
    FILE_SPECS,
    REFUSED,
    RENAMED,
    SPECS,
    SettingSpec,
    did_you_mean,
    format_value,
    gunicorn_only,
    refused,
)

if TYPE_CHECKING:
    from wsgid.paste import ServerSection

# Variables starting with WSGID__ (two underscores) are reserved for wsgid's own plumbing
# (for instance handing state to a re-executed master); they are not settings, so an unknown
# one must not be reported as a misspelt setting.
ENV_RESERVED_PREFIX = "WSGID__"


class Entry(NamedTuple):
    """One value from one source, with what an error message needs to point at it."""

    value: Any
    # The `sources` entry: "default", "file:PATH", "paste:PATH [SECTION]", "env:NAME" or
    # "flag:--x".
    label: str
    # Names the source, the key and the value as the user wrote them, to open an error
    # message: 'Environment variable WSGID_WORKERS="four"'.
    subject: str
    # How the user chose this entry, for a message about the file it names: "flag -c".
    given_by: str = ""


class Layer(NamedTuple):
    """What one source gives: its entries by setting name."""

    # "python": a gunicorn Python config (`pyfile.py`); its values are Python's, converted
    # like the environment's (`workers = os.environ.get("WORKERS", "4")` is usual there).
    # "paste": the server section of a paste file run by pserve.
    kind: Literal["default", "file", "python", "paste", "env", "flag"]
    entries: dict[str, Entry]


def config_location(value: str) -> str:
    """The `config` setting as given, made independent of a later chdir: a path is made
    absolute; gunicorn's `python:MODULE` is a module name, kept as it is."""
    if value.startswith(MODULE_PREFIX):
        return value
    return os.path.abspath(strip_file_prefix(value))


def _python_hint(path: str, text: str) -> str:
    """For a file that is not TOML but Python: gunicorn runs any -c file as Python, wsgid only
    one whose name ends in .py (`wsgid.pyconfig.is_python`)."""
    try:
        compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return ""
    name = os.path.basename(path)
    return (
        f" It is valid Python: if it is a gunicorn configuration file, name it {name}.py, since"
        f" wsgid runs a config file as Python by its .py extension and reads any other as TOML."
    )


def _table_clash(error: str, text: str) -> str:
    """A hint when TOML refused a setting at the top level that is named as a table is
    (`workers = 4` and `[workers]`): tomllib only says it "cannot overwrite a value"."""
    if not error.startswith("Cannot overwrite a value"):
        return ""
    for name in (t for t in TABLES if t in FILE_SPECS):
        if re.search(rf"(?m)^\s*{name}\s*=", text) and re.search(rf"(?m)^\s*\[{name}\]", text):
            return (
                f" The setting {name} at the top level clashes with the [{name}] table:"
                f" write it inside the table, as [{name}] {name} = ..."
            )
    return ""


def config_not_found(path: str, given_by: str) -> ConfigError:
    return ConfigError(
        f"Config file {path} not found (given by {given_by}). Check the path, or drop "
        f"{given_by} to run with defaults, environment variables and flags only."
    )


def environment_defaults(environ: Mapping[str, str]) -> Layer:
    """Defaults set through PORT and WEB_CONCURRENCY (platforms: Heroku, Cloud Run, ...) and
    FORWARDED_ALLOW_IPS (gunicorn's)."""
    entries: dict[str, Entry] = {}
    port = environ.get("PORT")
    if port is not None and port.strip():
        text = port.strip()
        if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > 65535:
            raise ConfigError(
                f'Environment variable PORT="{port}" is not valid: it sets the default bind '
                f"0.0.0.0:$PORT, so it must be a port number from 0 to 65535."
            )
        entries["bind"] = Entry(
            (f"0.0.0.0:{int(text)}",), "default", f'Environment variable PORT="{port}"'
        )
    concurrency = environ.get("WEB_CONCURRENCY")
    if concurrency is not None and concurrency.strip():
        text = concurrency.strip()
        if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
            raise ConfigError(
                f'Environment variable WEB_CONCURRENCY="{concurrency}" is not valid: it sets '
                f"the default number of workers, so it must be an integer from 1 to {MAX_WORKERS}."
            )
        entries["workers"] = Entry(
            int(text), "default", f'Environment variable WEB_CONCURRENCY="{concurrency}"'
        )
    allowed = environ.get("FORWARDED_ALLOW_IPS")
    if allowed is not None and allowed.strip():
        entries["forwarded_allow_ips"] = Entry(
            tuple(item.strip() for item in allowed.split(",") if item.strip()),
            "default",
            f'Environment variable FORWARDED_ALLOW_IPS="{allowed}"',
        )
    return Layer("default", entries)


def split_items(spec: SettingSpec, raw: str, *, always: bool) -> tuple[str, ...]:
    if always or spec.option.comma_separated:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return (raw,)


def text_value(spec: SettingSpec, raw: str) -> Any:
    """A setting's value from a source that can only give text: an environment variable, a
    key of a paste server section."""
    if spec.is_list:
        # A list in one string can only be comma-separated.
        return split_items(spec, raw, always=True)
    if raw.strip() == "" and spec.is_optional:
        return None  # WSGID_ACCESSLOG= unsets, as an empty variable usually does
    return raw.strip()


def read_environment(environ: Mapping[str, str]) -> Layer:
    entries: dict[str, Entry] = {}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var.startswith(ENV_RESERVED_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower()
        raw = environ[var]
        message = refused(name, f"Environment variable {var}")
        if message is not None:
            raise ConfigError(message)
        if name in RENAMED:
            name = RENAMED[name]
            if SPECS[name].env_var in environ:
                raise ConfigError(
                    f"Environment variables {var} and {SPECS[name].env_var} are both set; they"
                    f" set the same setting, {name}: unset one."
                )
        missing = gunicorn_only(name, f"Environment variable {var}")
        if missing is not None:
            raise ConfigError(f"{missing}; unset the variable.")
        if name not in SPECS:
            hint = did_you_mean(name, ALIASES)
            suggestion = f" Did you mean {SPECS[hint].env_var}?" if hint else ""
            raise ConfigError(
                f"Environment variable {var} is not a wsgid setting.{suggestion} Settings are "
                f"read from WSGID_<NAME> variables, one per setting (see `wsgid --help`); "
                f"unset {var} or correct its name."
            )
        value = text_value(SPECS[name], raw)
        if name == "config" and value is not None:
            value = config_location(value)
        entries[name] = Entry(
            value,
            f"env:{var}",
            f'Environment variable {var}="{raw}"',
            f"environment variable {var}",
        )
    return Layer("env", entries)


def _find_key_line(text: str, key: str, table: str | None) -> int | None:
    """The 1-based line where `key` is assigned (inside `[table]` if given), for messages."""
    in_table = table is None
    key_re = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
    header_re = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            in_table = table is not None and header.group(1).strip("\"' ") == table
            continue
        if in_table and key_re.match(line):
            return number
    return None


def read_file(path: str, given_by: str) -> Layer:
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except FileNotFoundError:
        raise config_not_found(path, given_by) from None
    except OSError as exc:
        raise ConfigError(
            f"Config file {path} (given by {given_by}) cannot be read: {exc.strerror}."
        ) from None
    if sys.version_info >= (3, 11):
        import tomllib  # here, not at the top: a start without a file does without its 1.6 ms
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid TOML: it is not UTF-8 text (byte {exc.start})."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(
            f"Config file {path} is not valid TOML: {exc}."
            f"{_table_clash(str(exc), text)}{_python_hint(path, text)}"
        ) from None

    label = f"file:{path}"
    entries: dict[str, Entry] = {}

    def where(key: str, table: str | None) -> str:
        # "Config file /etc/wsgid.toml, line 7" -- the line when it can be found.
        line = _find_key_line(text, key, table)
        return f"Config file {path}" + (f", line {line}" if line else "")

    def unknown(key: str, table: str | None) -> ConfigError:
        dotted = f"{table}.{key}" if table else key
        missing = gunicorn_only(key, where(key, table))
        if missing is not None:
            return ConfigError(f"{missing}; remove the key.")
        candidates = {a: n for a, n in ALIASES.items() if n in FILE_SPECS}
        hint = did_you_mean(key, candidates)
        if hint is not None:
            placed = SPECS[hint].table
            place = f" (in [{placed}] or at the top level)" if placed else ""
            suggestion = f' Did you mean "{hint}"{place}?'
        else:
            suggestion = ""
        return ConfigError(
            f'{where(key, table)}: unknown key "{dotted}".{suggestion} The settings are listed '
            f"by `wsgid --help` and in docs/configuration.md."
        )

    written_as: dict[str, str] = {}  # setting -> the name the file gave it (wsgi_app: app)

    def add(written: str, table: str | None, value: Any) -> None:
        dotted = f"{table}.{written}" if table else written
        message = refused(written, f'{where(written, table)}: "{dotted}"')
        if message is not None:
            raise ConfigError(message)
        key = RENAMED.get(written, written)
        if key == "config":
            raise ConfigError(
                f'{where(key, table)}: key "config" cannot be set inside a config file; '
                f"choose the file with -c/--config or WSGID_CONFIG."
            )
        if key not in FILE_SPECS:
            raise unknown(written, table)
        spec = FILE_SPECS[key]
        if table is not None and spec.table != table:
            home = f"in [{spec.table}]" if spec.table else "at the top level"
            raise ConfigError(
                f'{where(written, table)}: key "{written}" does not belong in [{table}]; put it '
                f"{home} or at the top level of the file."
            )
        if key in entries and written_as[key] != written:
            alias = written if written != key else written_as[key]
            raise ConfigError(
                f'Config file {path}: "{written_as[key]}" and "{written}" are both set; they are'
                f" one setting ({alias} is gunicorn's name for {key}): keep one."
            )
        if key in entries:
            raise ConfigError(
                f'Config file {path}: "{key}" is set twice, at the top level and in '
                f"[{spec.table}]; keep one."
            )
        shown = format_value(value)
        if spec.is_list:
            if isinstance(value, str):
                value = split_items(spec, value, always=False)
            elif isinstance(value, list):
                value = tuple(value)
        written_as[key] = written
        entries[key] = Entry(value, label, f"{where(written, table)}: {dotted} = {shown}")

    tables_text = ", ".join(f"[{t}]" for t in TABLES)
    for key, value in document.items():
        if isinstance(value, dict) and key in TABLES:
            for inner_key, inner_value in value.items():
                add(inner_key, key, inner_value)
        elif isinstance(value, dict) and key in FILE_SPECS and FILE_SPECS[key].is_table:
            add(key, None, value)  # a setting whose value is a table (logconfig_dict)
        elif isinstance(value, dict):
            if key in FILE_SPECS:
                hint = (
                    f'"{key}" is a setting, not a table; write {key} = ... in [{SPECS[key].table}].'
                )
            else:
                near = did_you_mean(key, {t: t for t in TABLES})
                hint = f"unknown table [{key}]" + (f"; did you mean [{near}]?" if near else ".")
            raise ConfigError(f"Config file {path}: {hint} The tables are {tables_text}.")
        elif key in SPECS or key in RENAMED or key in REFUSED:  # `config` too, to say why not
            add(key, None, value)
        elif key in TABLES:
            raise ConfigError(
                f'Config file {path}: "{key}" is a table; write its settings under a [{key}] '
                f"header, not {key} = {format_value(value)}."
            )
        else:
            raise unknown(key, None)
    return Layer("file", entries)


# The keys of a paste server section that are not settings, as in gunicorn: where to listen,
# and the TOML file with the rest of the settings.
PASTE_SERVER_KEYS = ("host", "port", "config")


def read_paste_server(server: ServerSection) -> Layer:
    """The settings in the server section of a paste file that runs wsgid (`pserve`).

    Every key is a setting's name and its value is text, as in an environment variable;
    `host` and `port` make `bind` (`host` may be a comma-separated list), `config` names a
    TOML file. `app` and `paste` are refused: the application is the one pserve loaded.
    """
    where = f"{server.ini}: paste {server.section}"
    label = f"paste:{server.ini} {server.section}"
    conf = {key.lower(): value for key, value in server.conf.items()}
    entries: dict[str, Entry] = {}
    host, port = conf.pop("host", None), conf.pop("port", None)
    if host is not None or port is not None:
        if "bind" in conf:
            raise ConfigError(f"{where} sets both bind and host/port; keep bind, or host and port.")
        given = ", ".join(f'{k} = "{v}"' for k, v in (("host", host), ("port", port)) if v)
        entries["bind"] = Entry(_paste_binds(host, port), label, f"{where} keys {given}")
    for key, raw in conf.items():
        subject = f'{where} key "{key}" = "{raw}"'
        if key in ("app", "paste"):
            raise ConfigError(
                f"{subject}: the application served is the one pserve loaded from the file's"
                f" [app] section; remove {key} from the server section."
            )
        if key == "config":
            entries[key] = Entry(
                os.path.abspath(raw.strip()), label, subject, f'{where} key "config"'
            )
            continue
        missing = gunicorn_only(key, where)
        if missing is not None:
            raise ConfigError(f"{missing}; remove the key.")
        if key not in FILE_SPECS:
            candidates = {a: n for a, n in ALIASES.items() if n in FILE_SPECS}
            candidates.update((k, k) for k in PASTE_SERVER_KEYS)
            hint = did_you_mean(key, candidates)
            suggestion = f' Did you mean "{hint}"?' if hint else ""
            raise ConfigError(
                f'{where}: key "{key}" is not a wsgid setting.{suggestion} The keys of the'
                f" section are host, port, config (a wsgid TOML file) and wsgid's settings,"
                f" listed by `wsgid --help` and in docs/configuration.md."
            )
        entries[key] = Entry(text_value(FILE_SPECS[key], raw), label, subject)
    return Layer("paste", entries)


def _paste_binds(host: str | None, port: str | None) -> tuple[str, ...]:
    """`bind` from a paste server section's host and port, as gunicorn maps them.

    Each host of the list gets the port; without a port each is a bind entry as written
    (a bare HOST means port 8000). A port alone listens on the default host, 127.0.0.1.
    """
    hosts = [h.strip() for h in (host or "").split(",") if h.strip()] or ["127.0.0.1"]
    if port is None or not port.strip():
        return tuple(hosts)
    binds = []
    for name in hosts:
        if name.startswith(("unix:", "fd://", "systemd:")):
            binds.append(name)  # not an address a port applies to
        elif name.count(":") > 1 and not name.startswith("["):
            binds.append(f"[{name}]:{port.strip()}")  # a bare IPv6 address
        else:
            binds.append(f"{name}:{port.strip()}")
    return tuple(binds)
