"""Settings: the one model of every wsgid option, and how it is filled from its sources.

What this module owns:

- `Settings`, the frozen pydantic model that is the single source of truth for every option:
  its flat name (gunicorn's name wherever gunicorn has the setting), type, default, validation
  and help text. Each field also carries an `Option` in its `Annotated` metadata: the TOML table
  it lives in, its command-line flags and how those flags behave. The command-line parser,
  `--help`, the documentation reference and the JSON Schema of the file are all generated
  from these two things and are never written a second time.
- `load_settings`, which merges the sources in the documented order --
  built-in defaults < TOML file (`-c`/`--config` or `WSGID_CONFIG`) < `WSGID_<NAME>`
  environment < command line -- and remembers where each effective value came from.
- The text of every `ConfigError` (the class lives in `wsgid.runtime`), the one paragraph a
  user sees for any bad configuration: it names the source (file path, environment variable
  or flag), the key, the bad value and what is accepted, with a did-you-mean for misspelt
  names.

Rules it keeps:

- Nothing here reads `os.environ` or prints: the environment is passed in, so a HUP reload
  and the tests see exactly what they pass. (argparse's own `--help`/`--version` are the
  one exception: they print and raise `SystemExit(0)`.)
- Each source is validated on its own before the merge, so a bad value is reported with the
  source it came from even when a higher-precedence source would have overridden it: a typo in
  the file should not lie in wait until the day the overriding flag is dropped.
- Adding a setting means adding one annotated field below (then `scripts/gen-schema` to
  refresh the committed schema, docs and typed fields, `wsgid/runtime_fields.py`). Checks
  that involve several fields belong in a `model_validator(mode="after")`; they run on the
  merged result only.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.fields import FieldInfo

from wsgid import __version__, build
from wsgid.runtime import MAX_WORKERS, Command, ConfigError, LoadedSettings, RuntimeSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "GROUPS",
    "SPECS",
    "ConfigError",
    "Group",
    "LoadedSettings",
    "Option",
    "SettingSpec",
    "Settings",
    "build_parser",
    "file_json_schema",
    "format_value",
    "load_settings",
]

ENV_PREFIX = "WSGID_"
# Variables starting with WSGID__ (two underscores) are reserved for wsgid's own plumbing
# (for instance handing state to a re-executed master); they are not settings, so an unknown
# one must not be reported as a misspelt setting.
ENV_RESERVED_PREFIX = "WSGID__"

# --------------------------------------------------------------------------------------------
# Per-field metadata
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A section of `--help` and the docs; when `table` is true also a TOML table name."""

    name: str
    title: str
    description: str
    table: bool = True


GROUPS: tuple[Group, ...] = (
    Group(
        "general",
        "General",
        "What to run and which configuration file to read.",
        table=False,
    ),
    Group("application", "Application", "What to serve and how it is imported."),
    Group("server", "Server socket", "Where to listen."),
    Group(
        "workers",
        "Worker processes",
        "How many workers, of which kind, and when they are recycled or killed.",
    ),
    Group("limits", "Request limits", "Bounds on the request head, against abuse."),
    Group("logging", "Logging", "The error log and the access log."),
    Group("process", "Process", "Identity and life of the master process."),
    Group(
        "hooks",
        "Server hooks",
        "Functions called at points of the server's life, as MODULE:FUNCTION import strings"
        " (gunicorn's hook names and arguments; see docs/signals.md).",
    ),
)
_GROUPS_BY_NAME = {g.name: g for g in GROUPS}
TABLES: tuple[str, ...] = tuple(g.name for g in GROUPS if g.table)


@dataclass(frozen=True)
class Option:
    """How one setting appears outside Python. Put it in the field's `Annotated` metadata.

    group:        the `Group` (TOML table and `--help` section) the setting belongs to.
    flags:        argparse option strings, gunicorn's spellings first; the first long one is
                  the canonical flag shown in docs.
    metavar:      the placeholder shown in `--help`.
    accepts:      what is accepted, for error messages and docs; derived from the type if None.
    default_doc:  how to describe a default that depends on the environment.
    repeatable:   the flag may be given several times, each occurrence adding an item.
    comma_separated: a single string may hold several comma-separated items, in every source
                  (list settings are always comma-separated in environment variables).
    positional:   the value may be given as the positional APP argument.
    in_file:      the setting may appear in the TOML file.
    octal:        shown in octal (umask).
    """

    group: str
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    accepts: str | None = None
    default_doc: str | None = None
    repeatable: bool = False
    comma_separated: bool = False
    positional: bool = False
    in_file: bool = True
    octal: bool = False


# --------------------------------------------------------------------------------------------
# Value checks shared by several fields
# --------------------------------------------------------------------------------------------

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_DEFAULT_PORT = 8000  # gunicorn's port for a bind given as a bare HOST


def _port(text: str, address: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > 65535:
        raise ValueError(f"port {text!r} in {address!r} is not a number from 0 to 65535")
    return int(text)


def _normalize_bind(address: str) -> str:
    """Check one bind address and return it in the canonical form the master parses.

    Canonical forms: `HOST:PORT`, `[V6]:PORT`, `unix:PATH`, `fd://N`, `systemd:NAME`.
    gunicorn's other spellings (`unix://PATH`, a bare `HOST` meaning port 8000) are rewritten
    here so that the listener code only ever meets those five.
    """
    if address.startswith("unix:"):
        path = address[len("unix://") :] if address.startswith("unix://") else address[5:]
        if not path:
            raise ValueError("unix: must be followed by the socket's path, like unix:/run/app.sock")
        return f"unix:{path}"
    if address.startswith("fd://"):
        fd = address[5:]
        if not re.fullmatch(r"[0-9]+", fd):
            raise ValueError(f"{address!r}: fd:// must be followed by a file descriptor number")
        return f"fd://{int(fd)}"
    if address.startswith("systemd:"):
        # A socket passed in by systemd, named by FileDescriptorName= (LISTEN_FDNAMES), whose
        # names are printable ASCII without ':' and at most 255 characters long.
        name = address[len("systemd:") :]
        if not (0 < len(name) <= 255 and name.isascii() and name.isprintable() and ":" not in name):
            raise ValueError(
                f"{address!r}: systemd: must be followed by the socket's name, the"
                " FileDescriptorName= of its .socket unit, like systemd:web"
            )
        return address
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"{address!r}: missing ']' after the IPv6 address")
        host, rest = address[1:end], address[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        if rest == "":
            return f"[{host}]:{_DEFAULT_PORT}"
        if not rest.startswith(":"):
            raise ValueError(f"{address!r}: expected ':PORT' after ']'")
        return f"[{host}]:{_port(rest[1:], address)}"
    if address.count(":") > 1:
        raise ValueError(f"{address!r}: write an IPv6 address in brackets, like [::1]:8000")
    host, colon, port = address.partition(":")
    if not host:
        raise ValueError(f"{address!r}: the host is missing (0.0.0.0 means every IPv4 interface)")
    if not _HOSTNAME_RE.fullmatch(host):
        raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    return f"{host}:{_port(port, address) if colon else _DEFAULT_PORT}"


def _check_env_assignment(item: str) -> str:
    key, equals, _ = item.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"{item!r} is not of the form KEY=VALUE")
    return item


BUILTIN_WORKER_CLASSES = ("sync", "gthread", "gevent", "eventlet", "tornado")
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _check_worker_class(value: str) -> str:
    if value in BUILTIN_WORKER_CLASSES or _DOTTED_RE.fullmatch(value):
        return value
    hint = difflib.get_close_matches(value.lower(), BUILTIN_WORKER_CLASSES, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"unknown worker class {value!r}{suggestion}")


def _lower(value: object) -> object:
    # gunicorn lower-cases the level, so `--log-level INFO` keeps working.
    return value.lower() if isinstance(value, str) else value


def _int_to_str(value: object) -> object:
    # A numeric uid/gid in TOML (`user = 1000`) means the same as the string "1000".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _parse_umask(value: object) -> object:
    """Read a umask the way gunicorn does: "022" is octal, as are 0o22 and 18 (decimal)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if re.fullmatch(r"0[0-7]+", text):
        return int(text, 8)
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{value!r} is not a number; write a umask in octal, like 022") from None


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
BindAddress = Annotated[
    str,
    AfterValidator(_normalize_bind),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(unix:.+|fd://[0-9]+|systemd:[^:]{1,255}|\[[0-9A-Fa-f:.%a-z]+\](:[0-9]+)?|[^:\[\]]+(:[0-9]+)?)$",
        }
    ),
]
EnvAssignment = Annotated[
    str,
    AfterValidator(_check_env_assignment),
    WithJsonSchema({"type": "string", "pattern": "^[^=]+="}),
]
IdName = Annotated[NonEmptyStr, BeforeValidator(_int_to_str)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["console", "json", "logfmt"]
SyslogFacility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
]  # fmt: skip
ACCESS_LOG_FORMATS = ("json", "logfmt", "console", "combined")
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


# The logging checks use the parsers the logs themselves run (wsgid.logs), imported late so
# that `wsgid --help` does not load the logging stack.
def _check_log_target(value: str | None) -> str | None:
    from wsgid.logs.targets import parse

    if value is not None:
        parse(value)
    return value


def _check_syslog_addr(value: str) -> str:
    from wsgid.logs.targets import parse

    if parse(value).kind != "syslog":
        raise ValueError(f"{value!r} is not a syslog address")
    return value


def _check_access_log_format(value: str) -> str:
    if value in ACCESS_LOG_FORMATS:
        return value
    if "%(" not in value:
        hint = difflib.get_close_matches(value.lower(), ACCESS_LOG_FORMATS, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"{value!r} is neither a format name nor a %(x)s format{suggestion}")
    from wsgid.logs.atoms import check

    check(value)
    return value


def _json_table(value: object) -> object:
    # In WSGID_LOGCONFIG_DICT the table can only be written as JSON.
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object ({exc})") from None
    return value


HookSpec = NonEmptyStr | None


def _hook(name: str) -> Option:
    """A server hook's Option: its flag is its name, dashed (`--on-starting`)."""
    return Option("hooks", ("--" + name.replace("_", "-"),), metavar="MODULE:FUNCTION")


def _hook_field(arguments: str, where: str) -> Any:
    """A hook setting: unset by default, described by its arguments and where it runs."""
    return Field(default=None, description=f"Called with the arguments {arguments}, {where}")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class Settings(BaseModel):
    """Every wsgid setting. Immutable once built; unknown keys are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- general / application ------------------------------------------------------------
    app: Annotated[
        NonEmptyStr | None,
        BeforeValidator(_strip),
        Option("application", positional=True, metavar="APP", accepts="MODULE:CALLABLE"),
    ] = Field(
        default=None,
        description=(
            "The WSGI application to serve, as an import string MODULE:CALLABLE. Also accepted: "
            "MODULE:ATTR.SUB, MODULE:factory() or MODULE:factory(ARGS) with literal arguments, "
            "and MODULE alone, which looks for `application`, then `app`."
        ),
    )
    config: Annotated[
        NonEmptyStr | None,
        Option("general", ("-c", "--config"), metavar="PATH", in_file=False, accepts="a file path"),
    ] = Field(
        default=None,
        description=(
            "The TOML configuration file to read. Relative paths are resolved against the "
            "working directory at startup, so a reload (HUP) re-reads the same file. Can only "
            "be given on the command line or as WSGID_CONFIG."
        ),
    )
    preload_app: Annotated[bool, Option("application", ("--preload",))] = Field(
        default=False,
        description=(
            "Load the application in the master before forking workers. Saves memory and "
            "start-up time; the application is then not reloaded on HUP."
        ),
    )
    chdir: Annotated[NonEmptyStr | None, Option("application", ("--chdir",), metavar="DIR")] = (
        Field(
            default=None,
            description="Change to this directory before loading the application.",
        )
    )
    pythonpath: Annotated[
        tuple[NonEmptyStr, ...],
        Option(
            "application",
            ("--pythonpath",),
            metavar="PATHS",
            repeatable=True,
            comma_separated=True,
            accepts="a list of directories",
        ),
    ] = Field(
        default=(),
        description=(
            "Directories to add to the front of the Python path before loading the "
            "application. Comma-separated in a single string, as in gunicorn."
        ),
    )
    raw_env: Annotated[
        tuple[EnvAssignment, ...],
        Option(
            "application",
            ("-e", "--env"),
            metavar="KEY=VALUE",
            repeatable=True,
            accepts="a list of KEY=VALUE strings",
        ),
    ] = Field(
        default=(),
        description=(
            "Environment variables to set in the server's environment, as KEY=VALUE. Repeat "
            "the flag for several; in WSGID_RAW_ENV they are comma-separated, so a value "
            "containing a comma must come from the file or a flag."
        ),
    )

    # --- server socket --------------------------------------------------------------------
    bind: Annotated[
        tuple[BindAddress, ...],
        Field(min_length=1),
        Option(
            "server",
            ("-b", "--bind"),
            metavar="ADDRESS",
            repeatable=True,
            comma_separated=True,
            accepts="HOST:PORT, [IPV6]:PORT, HOST (port 8000), unix:PATH, fd://N, systemd:NAME",
            default_doc="127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set",
        ),
    ] = Field(
        default=("127.0.0.1:8000",),
        description=(
            "The sockets to listen on. Repeat the flag to listen on several; in WSGID_BIND "
            "they are comma-separated."
        ),
    )
    backlog: Annotated[int, Option("server", ("--backlog",), metavar="INT")] = Field(
        default=2048,
        ge=1,
        description="The maximum number of pending connections the kernel queues per socket.",
    )

    # --- worker processes -----------------------------------------------------------------
    workers: Annotated[
        int,
        Option("workers", ("-w", "--workers"), metavar="INT", default_doc="$WEB_CONCURRENCY, or 1"),
    ] = Field(
        default=1,
        ge=1,
        le=MAX_WORKERS,
        description=(
            "The number of worker processes. A common start is 2-4 per CPU core; measure "
            f"your own application. At most {MAX_WORKERS}, the most one master supervises "
            "(TTIN stops there too)."
        ),
    )
    worker_class: Annotated[
        str,
        AfterValidator(_check_worker_class),
        Option(
            "workers",
            ("-k", "--worker-class"),
            metavar="CLASS",
            accepts=", ".join(BUILTIN_WORKER_CLASSES) + ", or a dotted path to a worker class",
        ),
    ] = Field(
        default="sync",
        examples=list(BUILTIN_WORKER_CLASSES),
        description=(
            "The kind of worker: `sync` runs the application one request at a time per "
            "worker; `gthread` runs it in a pool of `threads` threads; `gevent`, `eventlet` "
            "and `tornado` need those packages installed."
        ),
    )
    threads: Annotated[int, Option("workers", ("--threads",), metavar="INT")] = Field(
        default=1, ge=1, description="The number of threads per worker (gthread worker)."
    )
    worker_connections: Annotated[
        int, Option("workers", ("--worker-connections",), metavar="INT")
    ] = Field(
        default=1000,
        ge=1,
        description="The maximum number of simultaneous clients per worker.",
    )
    timeout: Annotated[float, Option("workers", ("-t", "--timeout"), metavar="SECONDS")] = Field(
        default=30.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "A worker silent for more than this many seconds is killed and restarted; with "
            "the sync worker this bounds each request. 0 disables the check."
        ),
    )
    graceful_timeout: Annotated[
        float, Option("workers", ("--graceful-timeout",), metavar="SECONDS")
    ] = Field(
        default=30.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "On a graceful stop or restart, how long in-flight requests may take to finish "
            "before their workers are killed."
        ),
    )
    keepalive: Annotated[float, Option("workers", ("--keep-alive",), metavar="SECONDS")] = Field(
        default=2.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "How long an idle keep-alive connection is held open waiting for the next "
            "request. 0 closes the connection after each response."
        ),
    )
    header_timeout: Annotated[
        float, Option("workers", ("--header-timeout",), metavar="SECONDS")
    ] = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a client has to send a complete request head, counted from its first "
            "byte, and then a body of up to small_body_size (read before the app is called), "
            "counted from the end of the head; a slower client gets 408 and the connection is "
            "closed. Idle or slow clients never hold the application."
        ),
    )
    max_requests: Annotated[int, Option("workers", ("--max-requests",), metavar="INT")] = Field(
        default=0,
        ge=0,
        description=(
            "Restart a worker after it has served this many requests, a guard against "
            "memory leaks. 0 disables."
        ),
    )
    max_requests_jitter: Annotated[
        int, Option("workers", ("--max-requests-jitter",), metavar="INT")
    ] = Field(
        default=0,
        ge=0,
        description=(
            "Add a random 0..N to max_requests per worker, so that workers do not all "
            "restart at once."
        ),
    )

    # --- request limits -------------------------------------------------------------------
    limit_request_line: Annotated[
        int, Option("limits", ("--limit-request-line",), metavar="BYTES")
    ] = Field(
        default=4094,
        ge=0,
        description=(
            "The maximum size of the request line (method, target and version), in bytes. "
            "0 means unlimited."
        ),
    )
    limit_request_fields: Annotated[
        int, Option("limits", ("--limit-request-fields",), metavar="INT")
    ] = Field(
        default=100,
        ge=0,
        le=32768,
        description=(
            "The maximum number of header fields in a request. 0 means the ceiling, 32768, "
            "as in gunicorn."
        ),
    )
    limit_request_field_size: Annotated[
        int,
        # gunicorn really spells this flag with an underscore; the dashed form is what
        # everyone types, so both are accepted.
        Option(
            "limits",
            ("--limit-request-field_size", "--limit-request-field-size"),
            metavar="BYTES",
        ),
    ] = Field(
        default=8190,
        ge=0,
        description="The maximum size of one request header field, in bytes. 0 means unlimited.",
    )
    limit_request_body: Annotated[
        int, Option("limits", ("--limit-request-body",), metavar="BYTES")
    ] = Field(
        default=0,
        ge=0,
        description=(
            "The largest request body accepted, in bytes; a larger one is refused with 413 "
            "before the application runs (or, for a chunked body found too large while the "
            "application reads it, wsgi.input raises). 0 means no limit."
        ),
    )
    small_body_size: Annotated[int, Option("limits", ("--small-body-size",), metavar="BYTES")] = (
        Field(
            default=65536,
            ge=0,
            description=(
                "Request bodies up to this size (chunked ones included) are read completely before "
                "the application is called, so a slow client never holds it and a framing error is "
                "refused with 400 before it runs. Larger bodies stream through wsgi.input."
            ),
        )
    )
    header_map: Annotated[
        Literal["drop", "refuse", "dangerous"],
        BeforeValidator(_lower),
        Option("limits", ("--header-map",), metavar="MODE"),
    ] = Field(
        default="drop",
        description=(
            "What to do with request header names containing an underscore, which would "
            "collide with dashed names in the environ (X_Forwarded_For posing as "
            "X-Forwarded-For): drop them, refuse the request with 400, or (dangerous) map "
            "them like dashed names. gunicorn's setting of the same name."
        ),
    )

    # --- logging --------------------------------------------------------------------------
    loglevel: Annotated[
        LogLevel,
        BeforeValidator(_lower),
        Option("logging", ("--log-level",), metavar="LEVEL"),
    ] = Field(default="info", description="The least severe level written to the error log.")
    errorlog: Annotated[
        NonEmptyStr,
        AfterValidator(_check_log_target),
        Option(
            "logging",
            ("--error-logfile", "--log-file"),
            metavar="FILE",
            accepts="-, a file path, syslog, unix://PATH, udp://HOST:PORT or tcp://HOST:PORT",
        ),
    ] = Field(
        default="-",
        description=(
            "Where the error log goes: `-` for standard error, a file path (created mode 0640, "
            "reopened on USR1), or syslog: `syslog` (the local /dev/log), `unix://PATH`, "
            "`udp://HOST:PORT` or `tcp://HOST:PORT`."
        ),
    )
    accesslog: Annotated[
        NonEmptyStr | None,
        AfterValidator(_check_log_target),
        Option(
            "logging",
            ("--access-logfile",),
            metavar="FILE",
            accepts="-, a file path, syslog, unix://PATH, udp://HOST:PORT or tcp://HOST:PORT",
        ),
    ] = Field(
        default=None,
        description=(
            "Where the access log goes: `-` for standard output, a file path, or a syslog "
            "address as for errorlog. Unset, there is no access log (and no cost per request)."
        ),
    )
    log_format: Annotated[
        LogFormat,
        BeforeValidator(_lower),
        Option("logging", ("--log-format",), metavar="FORMAT"),
    ] = Field(
        default="console",
        description=(
            "The format of the error log: `console` (`<time> [<level>] <event> key=value`, "
            "colour on a terminal), `json` (one object per line) or `logfmt`."
        ),
    )
    access_log_format: Annotated[
        NonEmptyStr,
        AfterValidator(_check_access_log_format),
        Option(
            "logging",
            ("--access-logformat",),
            metavar="FORMAT",
            accepts="json, logfmt, console, combined, or a gunicorn format of %(x)s atoms",
        ),
    ] = Field(
        default=GUNICORN_ACCESS_LOG_FORMAT,
        description=(
            "The format of the access log: `json`, `logfmt`, `console`, `combined` (Apache/"
            "nginx combined), or a gunicorn format string of %(x)s atoms (see docs/logging.md). "
            "The default is gunicorn's."
        ),
    )
    capture_output: Annotated[bool, Option("logging", ("--capture-output",))] = Field(
        default=False,
        description=(
            "Send what the application writes to stdout and stderr to the error log, one "
            "event per line."
        ),
    )
    syslog: Annotated[bool, Option("logging", ("--log-syslog",))] = Field(
        default=False,
        description=(
            "Also send the error log (and the access log, unless "
            "disable_redirect_access_to_syslog) to the syslog daemon at syslog_addr."
        ),
    )
    syslog_addr: Annotated[
        NonEmptyStr,
        AfterValidator(_check_syslog_addr),
        Option(
            "logging",
            ("--log-syslog-to",),
            metavar="ADDRESS",
            accepts="syslog, unix://PATH[#dgram|#stream], udp://HOST[:PORT] or tcp://HOST[:PORT]",
        ),
    ] = Field(
        default="unix:///dev/log",
        description=(
            "Where --log-syslog sends records. Unlike gunicorn (udp://localhost:514) the default "
            "is the local socket, which every syslog daemon and journald listen on."
        ),
    )
    syslog_prefix: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-syslog-prefix",), metavar="TAG")
    ] = Field(
        default=None,
        description=(
            "The syslog tag (APP-NAME) of the error log; the access log uses TAG.access. "
            "Default: wsgid."
        ),
    )
    syslog_facility: Annotated[
        SyslogFacility,
        BeforeValidator(_lower),
        Option("logging", ("--log-syslog-facility",), metavar="FACILITY"),
    ] = Field(default="user", description="The syslog facility of both logs.")
    syslog_format: Annotated[
        Literal["auto", "rfc5424", "rfc3164"],
        BeforeValidator(_lower),
        Option("logging", ("--log-syslog-format",), metavar="FRAMING"),
    ] = Field(
        default="auto",
        description=(
            "How syslog records are framed: `rfc5424` (timestamp with microseconds, hostname), "
            "`rfc3164` (what syslog(3) sends to /dev/log; journald only reads this one), or "
            "`auto`: rfc3164 on unix sockets, rfc5424 over UDP and TCP."
        ),
    )
    disable_redirect_access_to_syslog: Annotated[
        bool, Option("logging", ("--disable-redirect-access-to-syslog",))
    ] = Field(
        default=False,
        description="With --log-syslog, keep the access log out of syslog.",
    )
    logconfig: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-config",), metavar="FILE")
    ] = Field(
        default=None,
        description=(
            "A stdlib logging config file (fileConfig format) for the application's `logging` "
            "records, applied in the master before the workers start."
        ),
    )
    logconfig_json: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-config-json",), metavar="FILE")
    ] = Field(
        default=None,
        description="A stdlib logging config as a JSON file (dictConfig form). Beats logconfig.",
    )
    logconfig_dict: Annotated[
        dict[str, Any],
        BeforeValidator(_json_table),
        Option(
            "logging",
            ("--log-config-dict",),
            metavar="JSON",
            accepts="a table in logging.config.dictConfig form (JSON on the command line)",
        ),
    ] = Field(
        default_factory=dict,
        description=(
            "A stdlib logging config as a table (dictConfig form); beats logconfig_json and "
            "logconfig. On the command line and in WSGID_LOGCONFIG_DICT, written as JSON."
        ),
    )

    # --- process --------------------------------------------------------------------------
    proc_name: Annotated[
        NonEmptyStr | None, Option("process", ("-n", "--name"), metavar="NAME")
    ] = Field(
        default=None,
        description=(
            "The name shown in process titles (ps, top) instead of the application's, "
            "to tell several wsgid instances apart."
        ),
    )
    user: Annotated[IdName | None, Option("process", ("-u", "--user"), metavar="USER")] = Field(
        default=None,
        description="Run workers as this user, a name or a numeric uid.",
    )
    group: Annotated[IdName | None, Option("process", ("-g", "--group"), metavar="GROUP")] = Field(
        default=None,
        description="Run workers as this group, a name or a numeric gid.",
    )
    umask: Annotated[
        int,
        BeforeValidator(_parse_umask),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 0o777},
                    {"type": "string", "pattern": "^(0[oO]?[0-7]{1,3}|0|[1-9][0-9]{0,2})$"},
                ]
            }
        ),
        Option(
            "process",
            ("-m", "--umask"),
            metavar="MASK",
            octal=True,
            accepts="a file mode mask from 0 to 0o777, in octal like 022 or 0o22",
        ),
    ] = Field(
        default=0,
        ge=0,
        le=0o777,
        description="The umask of the wsgid processes (applied when daemonizing, as in gunicorn).",
    )
    pidfile: Annotated[NonEmptyStr | None, Option("process", ("-p", "--pid"), metavar="FILE")] = (
        Field(default=None, description="Write the master's process id to this file.")
    )
    daemon: Annotated[bool, Option("process", ("-D", "--daemon"))] = Field(
        default=False,
        description="Detach from the terminal and run in the background.",
    )

    # --- hooks ----------------------------------------------------------------------------
    on_starting: Annotated[HookSpec, _hook("on_starting")] = _hook_field(
        "(server)", "in the master, before the listeners are bound."
    )
    on_reload: Annotated[HookSpec, _hook("on_reload")] = _hook_field(
        "(server)", "in the master, on HUP before the new workers start."
    )
    when_ready: Annotated[HookSpec, _hook("when_ready")] = _hook_field(
        "(server)", "in the master, once the first generation of workers has booted."
    )
    pre_fork: Annotated[HookSpec, _hook("pre_fork")] = _hook_field(
        "(server, worker)", "in the master, before each worker is forked."
    )
    post_fork: Annotated[HookSpec, _hook("post_fork")] = _hook_field(
        "(server, worker)", "in the worker, just after the fork."
    )
    post_worker_init: Annotated[HookSpec, _hook("post_worker_init")] = _hook_field(
        "(worker)", "in the worker, after the application is loaded."
    )
    worker_int: Annotated[HookSpec, _hook("worker_int")] = _hook_field(
        "(worker)", "in the worker, when it gets INT or QUIT."
    )
    worker_abort: Annotated[HookSpec, _hook("worker_abort")] = _hook_field(
        "(worker)", "in the worker, when the master aborts it after a timeout."
    )
    pre_exec: Annotated[HookSpec, _hook("pre_exec")] = _hook_field(
        "(server)", "in the master, before the new master is exec'd (USR2)."
    )
    pre_request: Annotated[HookSpec, _hook("pre_request")] = _hook_field(
        "(worker, req)", "in the worker, before the application is called."
    )
    post_request: Annotated[HookSpec, _hook("post_request")] = _hook_field(
        "(worker, req, environ, resp)", "in the worker, after the response was sent."
    )
    child_exit: Annotated[HookSpec, _hook("child_exit")] = _hook_field(
        "(server, worker)", "in the master, after a worker was reaped."
    )
    worker_exit: Annotated[HookSpec, _hook("worker_exit")] = _hook_field(
        "(server, worker)", "in the master, after a worker was reaped (after child_exit)."
    )
    nworkers_changed: Annotated[HookSpec, _hook("nworkers_changed")] = _hook_field(
        "(server, new_value, old_value)", "in the master, when the worker count changes."
    )
    on_exit: Annotated[HookSpec, _hook("on_exit")] = _hook_field(
        "(server)", "in the master, just before it exits."
    )


# --------------------------------------------------------------------------------------------
# Introspection: one SettingSpec per field, read from the model once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    """Everything the generators need about one setting, derived from its field."""

    name: str
    field: FieldInfo
    option: Option

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def group(self) -> Group:
        return _GROUPS_BY_NAME[self.option.group]

    @property
    def table(self) -> str | None:
        return self.option.group if self.group.table else None

    @property
    def is_list(self) -> bool:
        return get_origin(_strip_optional(self.field.annotation)) is tuple

    @property
    def is_bool(self) -> bool:
        return _strip_optional(self.field.annotation) is bool

    @property
    def is_table(self) -> bool:
        return get_origin(_strip_optional(self.field.annotation)) is dict

    @property
    def is_optional(self) -> bool:
        return _is_optional(self.field.annotation)

    @property
    def long_flag(self) -> str | None:
        return next((f for f in self.option.flags if f.startswith("--")), None)

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)

    @property
    def description(self) -> str:
        return self.field.description or ""

    @property
    def summary(self) -> str:
        """The first sentence of the description, for `--help`."""
        text = self.description
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]

    @property
    def accepts(self) -> str:
        return self.option.accepts or _describe_type(self.field)

    @property
    def default_text(self) -> str:
        if self.option.default_doc:
            return self.option.default_doc
        return format_value(self.default, octal=self.option.octal)


_UnionType = type(int | str)  # `X | None` is a types.UnionType, `Optional[X]` a typing.Union


def _is_optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, _UnionType) and type(None) in get_args(annotation)


def _strip_optional(annotation: Any) -> Any:
    if _is_optional(annotation):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _bounds(metadata: Sequence[Any]) -> tuple[Any, Any]:
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high


def _describe_type(field: FieldInfo) -> str:
    """What a field accepts, in words, from its type and constraints."""
    annotation = _strip_optional(field.annotation)
    low, high = _bounds(field.metadata)
    if annotation is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if annotation in (int, float):
        noun = "an integer" if annotation is int else "a number"
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} >= {low}"
        return noun
    if get_origin(annotation) is tuple:
        return "a list of strings"
    return "a non-empty string"


def _collect_specs() -> dict[str, SettingSpec]:
    specs: dict[str, SettingSpec] = {}
    for name, info in Settings.model_fields.items():
        options = [m for m in info.metadata if isinstance(m, Option)]
        if len(options) != 1:
            raise TypeError(f"Settings.{name} needs exactly one Option(...) in its metadata")
        if options[0].group not in _GROUPS_BY_NAME:
            raise TypeError(f"Settings.{name}: unknown group {options[0].group!r}")
        specs[name] = SettingSpec(name, info, options[0])
    return specs


SPECS: Mapping[str, SettingSpec] = _collect_specs()
_FILE_SPECS = {n: s for n, s in SPECS.items() if s.option.in_file}


def format_value(value: Any, *, octal: bool = False) -> str:
    """A value as it would be written in TOML (None, which TOML lacks, as `(unset)`)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and octal:
        return f"0o{value:03o}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {format_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    return str(value)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


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
        for flag in spec.option.flags:
            if flag.startswith("--"):
                aliases.setdefault(flag[2:].replace("-", "_"), name)
                aliases.setdefault(flag[2:].replace("-", ""), name)
    aliases.update({name: name for name in SPECS})
    return aliases


_ALIASES = _aliases()


def _did_you_mean(word: str, candidates: Mapping[str, str]) -> str | None:
    """The candidate value whose key is `word` or closest to it, if any is close enough."""
    folded = word.lower()
    if folded in candidates:
        return candidates[folded]
    close = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=0.6)
    return candidates[close[0]] if close else None


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One value from one source, with what an error message needs to point at it."""

    value: Any
    label: str  # "default" | "file:PATH" | "env:NAME" | "flag:--x" -- the `sources` entry
    # Names the source, the key and the value as the user wrote them, to open an error
    # message: 'Environment variable WSGID_WORKERS="four"'.
    subject: str
    # How the user chose this entry, for a message about the file it names: "flag -c".
    given_by: str = ""


@dataclass
class _Layer:
    kind: Literal["default", "file", "env", "flag"]
    entries: dict[str, _Entry]


def _environment_defaults(environ: Mapping[str, str]) -> _Layer:
    """Defaults that platforms (Heroku, Cloud Run, ...) set through PORT and WEB_CONCURRENCY."""
    entries: dict[str, _Entry] = {}
    port = environ.get("PORT")
    if port is not None and port.strip():
        text = port.strip()
        if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > 65535:
            raise ConfigError(
                f'Environment variable PORT="{port}" is not valid: it sets the default bind '
                f"0.0.0.0:$PORT, so it must be a port number from 0 to 65535."
            )
        entries["bind"] = _Entry(
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
        entries["workers"] = _Entry(
            int(text), "default", f'Environment variable WEB_CONCURRENCY="{concurrency}"'
        )
    return _Layer("default", entries)


def _split_items(spec: SettingSpec, raw: str, *, always: bool) -> tuple[str, ...]:
    if always or spec.option.comma_separated:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return (raw,)


def _read_environment(environ: Mapping[str, str]) -> _Layer:
    entries: dict[str, _Entry] = {}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var.startswith(ENV_RESERVED_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower()
        raw = environ[var]
        if name not in SPECS:
            hint = _did_you_mean(name, _ALIASES)
            suggestion = f" Did you mean {SPECS[hint].env_var}?" if hint else ""
            raise ConfigError(
                f"Environment variable {var} is not a wsgid setting.{suggestion} Settings are "
                f"read from WSGID_<NAME> variables, one per setting (see `wsgid --help`); "
                f"unset {var} or correct its name."
            )
        spec = SPECS[name]
        value: Any
        if spec.is_list:
            # A list in one variable can only be comma-separated.
            value = _split_items(spec, raw, always=True)
        elif raw.strip() == "" and spec.is_optional:
            value = None  # WSGID_ACCESSLOG= unsets, as an empty variable usually does
        else:
            value = raw.strip()
        if name == "config" and value is not None:
            value = os.path.abspath(value)
        entries[name] = _Entry(
            value,
            f"env:{var}",
            f'Environment variable {var}="{raw}"',
            f"environment variable {var}",
        )
    return _Layer("env", entries)


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


def _read_file(path: str, given_by: str) -> _Layer:
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} not found (given by {given_by}). Check the path, or drop "
            f"{given_by} to run with defaults, environment variables and flags only."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Config file {path} (given by {given_by}) cannot be read: {exc.strerror}."
        ) from None
    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid TOML: it is not UTF-8 text (byte {exc.start})."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None

    label = f"file:{path}"
    entries: dict[str, _Entry] = {}

    def where(key: str, table: str | None) -> str:
        # "Config file /etc/wsgid.toml, line 7" -- the line when it can be found.
        line = _find_key_line(text, key, table)
        return f"Config file {path}" + (f", line {line}" if line else "")

    def unknown(key: str, table: str | None) -> ConfigError:
        candidates = {a: n for a, n in _ALIASES.items() if n in _FILE_SPECS}
        hint = _did_you_mean(key, candidates)
        if hint is not None:
            placed = SPECS[hint].table
            place = f" (in [{placed}] or at the top level)" if placed else ""
            suggestion = f' Did you mean "{hint}"{place}?'
        else:
            suggestion = ""
        dotted = f"{table}.{key}" if table else key
        return ConfigError(
            f'{where(key, table)}: unknown key "{dotted}".{suggestion} The settings are listed '
            f"by `wsgid --help` and in docs/configuration.md."
        )

    def add(key: str, table: str | None, value: Any) -> None:
        if key == "config":
            raise ConfigError(
                f'{where(key, table)}: key "config" cannot be set inside a config file; '
                f"choose the file with -c/--config or WSGID_CONFIG."
            )
        if key not in _FILE_SPECS:
            raise unknown(key, table)
        spec = _FILE_SPECS[key]
        if table is not None and spec.table != table:
            home = f"in [{spec.table}]" if spec.table else "at the top level"
            raise ConfigError(
                f'{where(key, table)}: key "{key}" does not belong in [{table}]; put it '
                f"{home} or at the top level of the file."
            )
        if key in entries:
            raise ConfigError(
                f'Config file {path}: "{key}" is set twice, at the top level and in '
                f"[{spec.table}]; keep one."
            )
        shown = format_value(value)
        if spec.is_list:
            if isinstance(value, str):
                value = _split_items(spec, value, always=False)
            elif isinstance(value, list):
                value = tuple(value)
        dotted = f"{table}.{key}" if table else key
        entries[key] = _Entry(value, label, f"{where(key, table)}: {dotted} = {shown}")

    tables_text = ", ".join(f"[{t}]" for t in TABLES)
    for key, value in document.items():
        if isinstance(value, dict) and key in TABLES:
            for inner_key, inner_value in value.items():
                add(inner_key, key, inner_value)
        elif isinstance(value, dict) and key in _FILE_SPECS and _FILE_SPECS[key].is_table:
            add(key, None, value)  # a setting whose value is a table (logconfig_dict)
        elif isinstance(value, dict):
            if key in _FILE_SPECS:
                hint = (
                    f'"{key}" is a setting, not a table; write {key} = ... in [{SPECS[key].table}].'
                )
            else:
                near = _did_you_mean(key, {t: t for t in TABLES})
                hint = f"unknown table [{key}]" + (f"; did you mean [{near}]?" if near else ".")
            raise ConfigError(f"Config file {path}: {hint} The tables are {tables_text}.")
        elif key in SPECS:  # `config` too, to explain why it is refused
            add(key, None, value)
        elif key in TABLES:
            raise ConfigError(
                f'Config file {path}: "{key}" is a table; write its settings under a [{key}] '
                f"header, not {key} = {format_value(value)}."
            )
        else:
            raise unknown(key, None)
    return _Layer("file", entries)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

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
        raw = values if isinstance(values, str) else ""
        previous = getattr(namespace, self.dest, None)
        items = previous.raw if (self.appends and isinstance(previous, _Given)) else ()
        setattr(namespace, self.dest, _Given(option_string or self.dest, (*items, raw)))


class _RecordAppend(_Record):
    """A repeatable flag (`-b`, `-e`): each occurrence adds an item."""

    appends = True


class _RecordBool(argparse.Action):
    """`--preload` / `--no-preload`: a boolean that a later source can also turn off."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        option = option_string or self.dest
        value = "false" if option.startswith("--no-") else "true"
        setattr(namespace, self.dest, _Given(option, (value,)))


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
        if not spec.option.flags:
            continue
        if spec.is_bool:
            flags = list(spec.option.flags)
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
        else:
            section.add_argument(
                *spec.option.flags,
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
    for alias, name in _ALIASES.items():
        long = SPECS[name].long_flag
        if long:
            candidates.setdefault("--" + alias.replace("_", "-"), long)
    return _did_you_mean(option, candidates)


@dataclass(frozen=True)
class _CommandLine:
    command: Command
    json_output: bool
    show_secrets: bool
    layer: _Layer


def _parse_command_line(argv: Sequence[str]) -> _CommandLine:
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

    entries: dict[str, _Entry] = {}
    if words:
        app_spec = next(s for s in SPECS.values() if s.option.positional)
        entries[app_spec.name] = _Entry(
            words[0], "flag:APP", f'Command-line argument APP "{words[0]}"'
        )
    for name, spec in SPECS.items():
        given = getattr(namespace, name, None)
        if not isinstance(given, _Given):
            continue
        value: Any
        if spec.is_list:
            value = tuple(i for raw in given.raw for i in _split_items(spec, raw, always=False))
            shown = " ".join(f'{given.option} "{raw}"' for raw in given.raw)
        else:
            value = given.raw[-1]
            shown = given.option if spec.is_bool else f'{given.option} "{value}"'
        if name == "config":
            value = os.path.abspath(value)
        entries[name] = _Entry(
            value, f"flag:{given.option}", f"Command-line flag {shown}", f"flag {given.option}"
        )
    return _CommandLine(
        command, bool(namespace.json), bool(namespace.show_secrets), _Layer("flag", entries)
    )


# --------------------------------------------------------------------------------------------
# Validation and merging
# --------------------------------------------------------------------------------------------


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _validate_layer(layer: _Layer) -> None:
    """Check every value of one source on its own; report the first bad one against its source."""
    if not layer.entries:
        return
    values = {name: entry.value for name, entry in layer.entries.items()}
    try:
        # TOML values carry real types, so the file is checked strictly (`workers = "4"` is a
        # mistake worth reporting); environment variables and flags are strings by nature.
        Settings.model_validate(values, strict=layer.kind == "file")
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            if not loc or loc[0] not in layer.entries:
                continue  # a cross-field rule; judged on the merged result
            name = str(loc[0])
            raise ConfigError(_bad_value_message(layer.entries[name], name, error)) from None


def _bad_value_message(entry: _Entry, name: str, error: Mapping[str, Any]) -> str:
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
    command_line = _parse_command_line(argv)
    if command_line.command == "config-schema":
        # The schema describes the file format; it does not depend on any configuration.
        defaults = RuntimeSettings.copy_of(Settings())
        return LoadedSettings(defaults, dict.fromkeys(SPECS, "default"), "config-schema")

    layers = [_environment_defaults(environ), _read_environment(environ)]
    config = command_line.layer.entries.get("config") or layers[1].entries.get("config")
    if config is not None and config.value is not None:
        layers.insert(1, _read_file(str(config.value), config.given_by))
    layers.append(command_line.layer)

    for layer in layers:
        _validate_layer(layer)

    merged: dict[str, _Entry] = {}
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
    )


# --------------------------------------------------------------------------------------------
# JSON Schema of the file format
# --------------------------------------------------------------------------------------------


def _file_property(spec: SettingSpec, flat: Mapping[str, Any]) -> dict[str, Any]:
    """One setting's schema in the file, from pydantic's schema of the field."""
    schema = {k: v for k, v in flat.items() if k not in ("title", "default", "description")}
    # TOML has no null: an optional setting is simply left out of the file.
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            del schema["anyOf"]
            schema = {**kept[0], **schema}
        else:
            schema["anyOf"] = kept
    if spec.is_list:
        # A single string is also accepted: one item, or comma-separated items.
        schema = {"anyOf": [schema, {"type": "string"}]}
    result: dict[str, Any] = {"description": spec.description, **schema}
    if spec.default is not None:
        default = spec.default
        result["default"] = list(default) if isinstance(default, tuple) else default
    return result


def file_json_schema() -> dict[str, Any]:
    """The JSON Schema of the TOML file: flat keys at the top level, or grouped in tables.

    Each setting is described once under `$defs` and referenced from the top level and from
    its table, so the two places cannot disagree.
    """
    flat = Settings.model_json_schema()["properties"]
    definitions = {name: _file_property(spec, flat[name]) for name, spec in _FILE_SPECS.items()}
    properties: dict[str, Any] = {name: {"$ref": f"#/$defs/{name}"} for name in definitions}
    for group in GROUPS:
        members = [n for n, spec in _FILE_SPECS.items() if spec.table == group.name]
        if not group.table or not members:
            continue
        table = {
            "type": "object",
            "description": f"{group.title}: {group.description}",
            "properties": {name: {"$ref": f"#/$defs/{name}"} for name in members},
            "additionalProperties": False,
        }
        # `workers` is both a setting and a table: either `workers = 4` or `[workers]`.
        existing = properties.get(group.name)
        properties[group.name] = {"anyOf": [existing, table]} if existing else table
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "wsgid configuration file",
        "description": (
            "A wsgid TOML configuration file. Every setting may be written at the top level "
            "or in its table. Generated by `wsgid config schema`."
        ),
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "$defs": definitions,
    }
