"""What a setting carries besides its type, and the checks its value goes through.

What this module owns:

- `Group` and `GROUPS`: the sections of `--help` and of the docs, most of them also a TOML
  table (`TABLES`);
- `Option`: how one setting appears outside Python (its table, flags, metavar, how its
  values are written), put in the `Annotated` metadata of its field in `model.py`;
- the value checks and conversions of the fields, as plain functions: bind addresses,
  KEY=VALUE pairs, user and group names, umask, case-insensitive choices, log targets and
  formats, worker classes (from the registry in `wsgid.workers`), hooks; and the checks that
  involve several settings (`check_combined`), which the model runs on its merged result.

It knows no setting by name, except in the combined checks: the model does. It never imports
pydantic: the settings loader runs these functions through the validator generated from the
model (`wsgid.settings.table`); the annotated types that attach them to the fields, which
need pydantic, are in `wsgid.settings.annotated`.
"""

from __future__ import annotations

import os
import re
import types
from typing import Any, NamedTuple

from wsgid import workers
from wsgid.access_formats import NAMED_FORMATS

# A setting's environment variable is this prefix and its name in capitals: WSGID_WORKERS.
ENV_PREFIX = "WSGID_"

# --------------------------------------------------------------------------------------------
# Per-field metadata
# --------------------------------------------------------------------------------------------


class Group(NamedTuple):
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
    Group(
        "proxy",
        "Behind a proxy",
        "Whom to believe about the client: PROXY protocol headers, forwarded headers, request"
        " ids (see docs/behind-a-proxy.md).",
    ),
    Group(
        "tls",
        "TLS",
        "HTTPS on wsgid's own listeners: the certificate, client certificates, protocol versions"
        " (see docs/tls.md).",
    ),
    Group("logging", "Logging", "The error log and the access log."),
    Group(
        "monitoring",
        "Health and draining",
        "A side listener for health probes, and a delay at stop for load balancers to drain"
        " (see docs/health.md).",
    ),
    Group("process", "Process", "Identity and life of the master process."),
    Group(
        "hooks",
        "Server hooks",
        "Functions called at points of the server's life, as MODULE:FUNCTION import strings"
        " (gunicorn's hook names and arguments; see docs/signals.md), or defined in a gunicorn"
        " Python config file.",
    ),
)
GROUPS_BY_NAME = {g.name: g for g in GROUPS}
TABLES: tuple[str, ...] = tuple(g.name for g in GROUPS if g.table)


class Option(NamedTuple):
    """How one setting appears outside Python. Put it in the field's `Annotated` metadata.

    group:        the `Group` (TOML table and `--help` section) the setting belongs to.
    flags:        argparse option strings, gunicorn's spellings first; the first long one is
                  the canonical flag shown in docs. None: the setting's name, dashed
                  (`max_requests` is `--max-requests`); () for none.
    metavar:      the placeholder shown in `--help`.
    accepts:      what is accepted, for error messages and docs; derived from the type if None.
    default_doc:  how to describe a default that depends on the environment.
    repeatable:   the flag may be given several times, each occurrence adding an item.
    comma_separated: a single string may hold several comma-separated items, in every source
                  (list settings are always comma-separated in environment variables).
    positional:   the value may be given as the positional APP argument.
    in_file:      the setting may appear in the TOML file.
    octal:        shown in octal (umask).
    bare:         the value a flag given without one means (`--proxy-protocol` alone is
                  `auto`); None: the flag always takes a value.
    """

    group: str
    flags: tuple[str, ...] | None = None
    metavar: str | None = None
    accepts: str | None = None
    default_doc: str | None = None
    repeatable: bool = False
    comma_separated: bool = False
    positional: bool = False
    in_file: bool = True
    octal: bool = False
    bare: str | None = None


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


def normalize_bind(address: str) -> str:
    """Check one bind address and return it in the canonical form the master parses.

    Canonical forms: `HOST:PORT`, `[V6]:PORT`, `unix:PATH`, `fd://N`, `systemd:NAME`.
    gunicorn's other spellings (`unix://PATH`, `tcp://HOST:PORT`, a bare `HOST` meaning port
    8000, `:PORT` meaning every IPv4 interface, App Engine's and Cloud Run's `-b :$PORT`) are
    rewritten here so that the listener code only ever meets those five.
    """
    if address.startswith("tcp://"):
        address = address[len("tcp://") :]
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
        import ipaddress  # an IPv6 bind only: every start reads this module

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
    if not host and colon:
        host = "0.0.0.0"  # gunicorn binds ":PORT" to every IPv4 interface
    if not _HOSTNAME_RE.fullmatch(host):
        raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    return f"{host}:{_port(port, address) if colon else _DEFAULT_PORT}"


def check_env_assignment(item: str) -> str:
    key, equals, _ = item.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"{item!r} is not of the form KEY=VALUE")
    return item


def check_directory(value: str | None) -> str | None:
    """An existing directory: a missing one would stop every worker as it loads the app."""
    if value is not None and not os.path.isdir(value):
        problem = "is not a directory" if os.path.exists(value) else "does not exist"
        raise ValueError(f"{value!r} {problem}")
    return value


def check_worker_class(value: str) -> str:
    kind = workers.gunicorn_kind(value)
    if kind is not None:
        return kind
    if workers.asgi(value):
        raise ValueError(
            f"{value!r} is a worker class of ASGI applications, and wsgid serves WSGI only"
            f" (an ASGI application needs an ASGI server: uvicorn, hypercorn)"
        )
    if workers.known(value):
        return value
    import difflib  # a mistake's hint only

    hint = difflib.get_close_matches(value.lower(), list(workers.KINDS), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"unknown worker class {value!r}{suggestion}")


WORKER_CLASS_HELP = (
    "The kind of worker: "
    + "; ".join(f"`{name}` {kind.summary}" for name, kind in workers.KINDS.items())
    + f"; or {workers.DOTTED_PATH_TEXT}."
)


def lower(value: object) -> object:
    # gunicorn lower-cases its choices, so `--log-level INFO` keeps working.
    return value.lower() if isinstance(value, str) else value


def int_to_str(value: object) -> object:
    # A numeric uid/gid in TOML (`user = 1000`) means the same as the string "1000".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def parse_umask(value: object) -> object:
    """Read a umask the way gunicorn does: "022" is octal, as are 0o22 and 18 (decimal)."""
    return _number(value, r"0[0-7]+", "a umask in octal, like 022")


def parse_mode(value: object) -> object:
    """Read a file mode as chmod does: digits are octal ("600", "0600"), as is 0o600."""
    return _number(value, r"[0-7]{1,4}", "a file mode in octal, like 600")


def _number(value: object, octal: str, write: str) -> object:
    """A string matching `octal` read in octal, any other as Python reads an integer."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if re.fullmatch(octal, text):
        return int(text, 8)
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{value!r} is not a number; write {write}") from None


def strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


# A year: far beyond any wait a server means, and every consumer (epoll's milliseconds,
# systemd's microseconds in EXTEND_TIMEOUT_USEC) still takes it.
MAX_SECONDS = 365 * 24 * 3600
BIND_ACCEPTED = (
    "HOST:PORT, [IPV6]:PORT, HOST (port 8000), :PORT (every IPv4 interface), unix:PATH, fd://N,"
    " systemd:NAME"
)


def log_level(value: object) -> object:
    # gunicorn takes any case, and "warn" (logging's other name of WARNING, and what gunicorn
    # users write) means warning; gunicorn would fall back to info for it without a word.
    value = lower(value)
    return "warning" if value == "warn" else value


MANAGED_DIR_ACCEPTED = "auto, off, or an absolute path"
CONTROL_SOCKET_ACCEPTED = "auto (systemd's RuntimeDirectory only), off, or an absolute path"


def check_managed_dir(value: str) -> str:
    """auto, off, or an absolute path: wsgid never makes such a file relative to wherever
    it was started."""
    if value in ("auto", "off") or os.path.isabs(value):
        return value
    raise ValueError(f"{value!r} is a relative path; give an absolute one")


STATSD_ACCEPTED = "HOST:PORT, [IPV6]:PORT, HOST (port 8125), unix:PATH or unix://PATH"


def check_statsd_host(value: str | None) -> str | None:
    """A statsd address as gunicorn reads it, written one way (`statsd.parse_target`)."""
    if value is None:
        return None
    from wsgid.statsd import parse_target

    return str(parse_target(value))


# What errorlog and accesslog accept, in words.
LOG_TARGETS_ACCEPTED = "-, a file path, syslog, unix://PATH, udp://HOST:PORT or tcp://HOST:PORT"


# The logging checks use the parsers the logs themselves run (wsgid.logs), imported late so
# that `wsgid --help` does not load the logging stack.
def check_log_target(value: str | None) -> str | None:
    from wsgid.logs.targets import parse

    if value is not None:
        parse(value)
    return value


def check_syslog_addr(value: str) -> str:
    from wsgid.logs.targets import parse

    if parse(value).kind != "syslog":
        raise ValueError(f"{value!r} is not a syslog address")
    return value


# What the access_log_format setting accepts, in words.
ACCESS_FORMATS_ACCEPTED = ", ".join(NAMED_FORMATS) + ", or a gunicorn format of %(x)s atoms"


def check_access_log_format(value: str) -> str:
    if value in NAMED_FORMATS:
        return value
    if "%(" not in value:
        import difflib  # a mistake's hint only

        hint = difflib.get_close_matches(value.lower(), NAMED_FORMATS, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"{value!r} is neither a format name nor a %(x)s format{suggestion}")
    from wsgid.logs.atoms import check

    check(value)
    return value


# gunicorn's spellings of its own default logger class, the one logger_class wsgid accepts:
# wsgid's logs do its job (`simple` is gunicorn's short name for it).
# gunicorn's statsd logger class is its default plus statsd, which wsgid sends when
# statsd_host is set, whatever the logger class.
GUNICORN_LOGGER_CLASSES = (
    "gunicorn.glogging.Logger",
    "simple",
    "gunicorn.instrument.statsd.Statsd",
)
LOGGER_CLASS_ACCEPTED = (
    "gunicorn.glogging.Logger or simple (gunicorn's default), or"
    " gunicorn.instrument.statsd.Statsd (statsd is on when statsd_host is set)"
)


def class_path(value: object) -> object:
    # A gunicorn Python configuration file may give the class itself (`logger_class = MyLogger`).
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def check_logger_class(value: str | None) -> str | None:
    if value is None or value.strip() in GUNICORN_LOGGER_CLASSES:
        return value
    # A gunicorn Logger subclass is called with gunicorn's own objects (its Response, its
    # stdlib loggers), which a wsgid process does not have: it cannot be run, only refused.
    raise ValueError(
        f"wsgid cannot use a gunicorn logger class ({value}): its logs are structlog"
        " pipelines. For JSON or logfmt records set log_format and access_log_format; to"
        " route or filter records, give the gunicorn.access or gunicorn.error logger a"
        " handler or filter in logconfig_dict (docs/logging.md); then remove logger_class"
    )


def check_allow_entry(value: str) -> str:
    from wsgid.http.allowlist import ANYONE, parse_entry

    if value.strip() != ANYONE:
        parse_entry(value)
    return value.strip()


ALLOW_ACCEPTED = "a list of IP addresses and CIDR networks (10.0.0.0/8), or *"


def upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def proxy_mode(value: object) -> object:
    # gunicorn's spellings: a bare flag or `true` means auto; `false` and `none` mean off.
    if isinstance(value, bool):
        return "auto" if value else "off"
    if isinstance(value, str):
        text = value.strip().lower()
        return {"true": "auto", "false": "off", "none": "off"}.get(text, text)
    return value


def cert_reqs(value: object) -> object:
    # gunicorn's values are ssl.CERT_NONE/OPTIONAL/REQUIRED, 0, 1 and 2 (also as text).
    names = {"0": "none", "1": "optional", "2": "required"}
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(str(value), value)
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("cert_")
        return names.get(text, text)
    return value


def tls_version(value: object) -> object:
    # "1.2", and OpenSSL's and Python's spellings: TLSv1.2, TLSv1_2.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("tlsv").replace("_", ".")
        return text
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")


def check_header_name(value: str) -> str:
    if value and not _TOKEN.fullmatch(value):
        problem = "an underscore" if "_" in value else "a character a header name cannot have"
        raise ValueError(f"{value!r} is not a header name: it has {problem} (write X-Name)")
    return value


HEADER_NAME_ACCEPTED = "a header name like X-Request-ID, or empty for none"


def check_scheme_headers(value: dict[str, str]) -> dict[str, str]:
    for name, secure in value.items():
        check_header_name(name)
        if not name:
            raise ValueError("a header name is empty")
        if not secure:
            raise ValueError(f"the value of {name!r} is empty; write the value that means https")
    return value


def json_table(value: object) -> object:
    # In WSGID_LOGCONFIG_DICT the table can only be written as JSON.
    if isinstance(value, str):
        if not value.strip():
            return {}
        import json  # this variable only: every start reads this module

        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object ({exc})") from None
    return value


def paste_uri(value: str | None) -> str | None:
    """`FILE[#NAME]` of a Paste Deploy file, with FILE made absolute.

    Resolved when the settings are read (against the directory wsgid was started in, as
    gunicorn does), so `chdir` and a reload (HUP) do not change which file it means.
    """
    if value is None:
        return None
    path, hash_sign, name = value.partition("#")
    if not path.strip():
        raise ValueError(f"{value!r} names no file; write FILE.ini or FILE.ini#NAME")
    if hash_sign and not name.strip():
        raise ValueError(f"{value!r}: the section name after # is empty; write FILE.ini#NAME")
    return os.path.abspath(path.strip()) + (f"#{name.strip()}" if hash_sign else "")


def paste_globals(value: object) -> object:
    """The Paste Deploy global variables as a table, from any of the forms they are written in.

    A table (TOML), a JSON object (WSGID_RAW_PASTE_GLOBAL_CONF), or gunicorn's list of
    KEY=VALUE strings (`--paste-global` repeated, a gunicorn config file); a later KEY wins.
    TOML numbers and booleans become the strings an ini file would hold: Paste Deploy hands
    every value to the application as text.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json_table(text)
        else:
            value = [item for item in text.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        table: dict[object, object] = {}
        for item in value:
            if not isinstance(item, str):
                return value  # the type check names what is wrong
            key, _, text = check_env_assignment(item.strip()).partition("=")
            table[key.strip()] = text
        return table
    if isinstance(value, dict):
        return {key: _ini_text(item) for key, item in value.items()}
    return value


def _ini_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def hook_import_string(value: str | None) -> str | None:
    """A hook's import string, as MODULE:FUNCTION. gunicorn's form, MODULE.FUNCTION (its
    validate_callable splits at the last dot), is read as that, so gunicorn configurations
    keep working; a string with a colon (or a Python config's hook reference) is kept as is."""
    if value is None or ":" in value:
        return value
    module, _, name = value.strip().rpartition(".")
    if not module or not name:
        raise ValueError(f"{value!r} is not an import string (MODULE:FUNCTION or MODULE.FUNCTION)")
    return f"{module}:{name}"


def no_nul(value: object) -> object:
    """No setting holds a NUL character: no path, name, header or environment variable can,
    and the system call that met one would fail at start rather than here."""
    if _holds_nul(value):
        raise ValueError("it holds a NUL character")
    return value


def _holds_nul(value: object) -> bool:
    """Whether a string in `value` (a string, or a list or table of them) holds a NUL."""
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    return False


def check_combined(settings: Any) -> None:
    """The rules that involve several settings, on a result with one attribute per setting
    (the model, or the values the generated validator returns): a ValueError for the first
    one broken. They run on the merged result only."""
    _one_application(settings)
    _reload_without_preload(settings)
    _cooperative_without_preload(settings)
    _metrics_bind_apart(settings)
    _tls_complete(settings)
    _proxy_listeners_known(settings)


def check_combined_fields(
    result: tuple[dict[str, Any], Any, Any],
) -> tuple[dict[str, Any], Any, Any]:
    """`check_combined` as the generated validator calls it: on what pydantic-core's
    model-fields validator returns, the values, the extra ones and the names set."""
    check_combined(types.SimpleNamespace(**result[0]))
    return result


def _one_application(settings: Any) -> None:
    """app and paste both name the application to serve: one of them, not both."""
    if settings.app is not None and settings.paste is not None:
        raise ValueError(
            "app and paste are both set, and each names the application to serve; keep"
            " app for a MODULE:CALLABLE, or paste for a Paste Deploy file"
        )


def _reload_without_preload(settings: Any) -> None:
    """reload needs the workers to import the app: preload_app imports it in the master."""
    if settings.reload and settings.preload_app:
        raise ValueError(
            "reload and preload_app cannot be combined: with preload_app the application"
            " is imported once, in the master, so reloaded workers would still run the old"
            " code; drop preload_app (--preload) while developing"
        )


def _cooperative_without_preload(settings: Any) -> None:
    """gevent and eventlet patch the standard library in each worker, before the app is
    imported."""
    kind = workers.KINDS.get(settings.worker_class)
    if kind is not None and kind.cooperative and settings.preload_app:
        name = settings.worker_class
        raise ValueError(
            f"worker_class {name} and preload_app cannot be combined: preload_app imports"
            " the application in the master, which is never monkey-patched, so its locks,"
            " sockets and thread-locals would stay blocking ones in every worker (hangs);"
            f" drop preload_app (--preload) to serve with {name}"
        )


def _metrics_bind_apart(settings: Any) -> None:
    """The side listener cannot share an address with the app's listeners."""
    if settings.metrics_bind is not None and settings.metrics_bind in settings.bind:
        raise ValueError(
            f"metrics_bind {settings.metrics_bind} is also in bind: health probes need an"
            " address of their own, apart from the application's"
        )


def _tls_complete(settings: Any) -> None:
    """The TLS settings need certfile; client certificates need a CA to verify them."""
    if settings.certfile is None:
        needing = [
            name
            for name in (
                "keyfile",
                "keyfile_password_file",
                "keyfile_password_env",
                "ca_certs",
                "tls_binds",
                "tls_keylog_file",
                "tls_reload_on_change",
            )
            if getattr(settings, name)
        ]
        if settings.cert_reqs != "none":
            needing.append("cert_reqs")
        if needing:
            raise ValueError(
                f"{', '.join(needing)} {'is' if len(needing) == 1 else 'are'} set but"
                " certfile is not: TLS is served with the certificate certfile names"
            )
        return
    if settings.cert_reqs != "none" and settings.ca_certs is None:
        raise ValueError(
            f"cert_reqs is {settings.cert_reqs} but ca_certs is not set: no client certificate"
            " could be verified, so every client would be refused; set ca_certs to the CA"
            " file that signs your clients' certificates"
        )
    _check_binds_known("tls_binds", settings.tls_binds, settings.bind)


def _proxy_listeners_known(settings: Any) -> None:
    """proxy_protocol_binds names listeners of bind, and only with proxy_protocol on."""
    if not settings.proxy_protocol_binds:
        return
    if settings.proxy_protocol == "off":
        raise ValueError(
            "proxy_protocol_binds is set but proxy_protocol is off; set proxy_protocol"
            " (v1, v2 or auto) or remove proxy_protocol_binds"
        )
    _check_binds_known("proxy_protocol_binds", settings.proxy_protocol_binds, settings.bind)


def _check_binds_known(name: str, listed: tuple[str, ...], bind: tuple[str, ...]) -> None:
    """A setting that names listeners (`name`) names only entries of bind."""
    unknown = [b for b in listed if b not in bind]
    if unknown:
        raise ValueError(
            f"{name} names {', '.join(unknown)}, which bind does not (bind: {', '.join(bind)})"
        )
