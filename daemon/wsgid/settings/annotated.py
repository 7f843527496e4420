"""The annotated types the fields of `Settings` are built from: pydantic's half of them.

What this module owns: each type as pydantic reads it, a base type with its constraints,
the checks of `wsgid.settings.fields` it runs before or after, and the JSON Schema it
shows: bind addresses, KEY=VALUE pairs, user and group names, counts and durations,
case-insensitive choices, header names, worker classes (from the registry in
`wsgid.workers`), hooks.

Why apart from `wsgid.settings.fields`: the checks themselves are plain functions, which the
settings loader runs through a validator generated from the model (`wsgid.settings.table`)
without importing pydantic; these types, which need pydantic, are read only where the model
is built.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from wsgid import workers
from wsgid.settings.fields import (
    MAX_SECONDS,
    Option,
    cert_reqs,
    check_allow_entry,
    check_env_assignment,
    check_header_name,
    check_worker_class,
    hook_import_string,
    int_to_str,
    log_level,
    lower,
    normalize_bind,
    proxy_mode,
    tls_version,
    upper,
)

# The worker_class setting: a kind of the registry (wsgid.workers.KINDS) or a dotted path.
WorkerClass = Annotated[
    str,
    AfterValidator(check_worker_class),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [
                {"enum": [*workers.KINDS, *workers.GUNICORN_CLASSES]},
                {"pattern": f"^{workers.DOTTED_PATH}$"},
            ],
        }
    ),
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
Count = Annotated[int, Field(ge=0)]  # sizes and counts where 0 means "none" or "no limit"
Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
BindAddress = Annotated[
    str,
    AfterValidator(normalize_bind),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(unix:.+|fd://[0-9]+|systemd:[^:]{1,255}|(tcp://)?(\[[0-9A-Fa-f:.%a-z]+\](:[0-9]+)?|[^:\[\]]+(:[0-9]+)?|:[0-9]+))$",
        }
    ),
]
EnvAssignment = Annotated[
    str,
    AfterValidator(check_env_assignment),
    WithJsonSchema({"type": "string", "pattern": "^[^=]+="}),
]
IdName = Annotated[NonEmptyStr, BeforeValidator(int_to_str)]
# Choices, accepted in any case as gunicorn accepts them.
HeaderMap = Annotated[Literal["drop", "refuse", "dangerous"], BeforeValidator(lower)]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(log_level)
]
LogFormat = Annotated[Literal["console", "json", "logfmt"], BeforeValidator(lower)]
ReloadEngine = Annotated[Literal["auto", "inotify", "poll"], BeforeValidator(lower)]
SyslogFacility = Annotated[
    Literal[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
        "local7",
    ],
    BeforeValidator(lower),
]  # fmt: skip
SyslogFraming = Annotated[Literal["auto", "rfc5424", "rfc3164"], BeforeValidator(lower)]
MemoryMetric = Annotated[Literal["rss", "pss"], BeforeValidator(lower)]
StatsdNaming = Annotated[Literal["gunicorn", "wsgid"], BeforeValidator(lower)]
# An entry of proxy_allow_ips or forwarded_allow_ips.
AllowEntry = Annotated[
    str,
    AfterValidator(check_allow_entry),
    WithJsonSchema({"type": "string", "description": "an IP address, a CIDR network, or *"}),
]
ProxyProtocol = Annotated[Literal["off", "v1", "v2", "auto"], BeforeValidator(proxy_mode)]
CertReqs = Annotated[Literal["none", "optional", "required"], BeforeValidator(cert_reqs)]
TlsVersion = Annotated[Literal["1.2", "1.3"], BeforeValidator(tls_version)]
RemoteAddrFrom = Annotated[Literal["peer", "x-forwarded-for", "forwarded"], BeforeValidator(lower)]
ForwarderHeader = Annotated[
    Literal["SCRIPT_NAME", "PATH_INFO", "REMOTE_USER"], BeforeValidator(upper)
]
# A request or response header name; "" for none.
HeaderName = Annotated[str, AfterValidator(check_header_name)]
# A server hook, set by the flag of its name (`--on-starting`).
Hook = Annotated[
    NonEmptyStr | None,
    AfterValidator(hook_import_string),
    Option(
        "hooks",
        metavar="MODULE:FUNCTION",
        accepts=(
            "MODULE:FUNCTION, or gunicorn's MODULE.FUNCTION (in a Python config file, the"
            " function itself)"
        ),
    ),
]
