"""The settings as a running server holds them: typed, read-only, no pydantic.

What this module owns:

- `RuntimeSettings`, what every serving process reads: a copy of a validated
  `wsgid.settings.Settings` with one typed, read-only attribute per setting (generated from
  the model into `wsgid.runtime_fields`), and the values derived from several settings,
  computed here and nowhere else: the worker kind, the HTTP limits, whose forwarded headers
  count and which listeners require a PROXY header, where the logs go, the hooks that are set;
- `LoadedSettings`: the effective settings, where each value came from, and the command;
- `ConfigError`, the error of any bad configuration (its text is the message for the user).

Why it is apart from `wsgid.settings`: importing pydantic and building the model costs a
process about 11 MiB and a tenth of a second, and only reading the configuration needs it.
`wsgid.cli` reads it in a short-lived child process and hands the master a `RuntimeSettings`,
so the master, and by fork every worker, never imports pydantic. This module must not import
pydantic or `wsgid.settings` (tests/integration/test_lean_processes.py checks a worker has
neither).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple

from wsgid.runtime_fields import HOOK_SETTINGS, SETTING_NAMES, SettingFields

if TYPE_CHECKING:
    from wsgid.http.forwarded import Forwarding
    from wsgid.http.parser import Limits
    from wsgid.http.proxy_protocol import Mode as ProxyMode
    from wsgid.logs.targets import LogTargets

Command = Literal["serve", "check", "config-show", "config-schema", "config-import", "status"]

# The most workers one master supervises: the bound of the `workers` setting and of TTIN.
# Here because both the settings model and the master need it, and the master must not
# import the model. The master sizes its heartbeat table from it.
MAX_WORKERS = 4096


class ConfigError(Exception):
    """Bad configuration. `str(error)` is the one-paragraph message for the user."""


class RuntimeSettings(SettingFields):
    """The effective settings: one typed, read-only attribute per setting, and what follows.

    The attributes come from `SettingFields`, generated from the model; mypy rejects a name
    that is not a setting. The properties below are the values derived from several
    settings: consumers ask for them rather than work them out again.
    """

    # No __dict__ (the attributes are the generated slots), and so no attribute but a setting.
    __slots__ = ()

    @classmethod
    def copy_of(cls, source: object) -> RuntimeSettings:
        """The settings of `source`, which has one attribute per setting (a validated model)."""
        return cls(**{name: getattr(source, name) for name in SETTING_NAMES})

    @property
    def worker_kind(self) -> str:
        """The worker kind (`sync`, `gthread`) or the dotted path of the worker class to run.

        gunicorn's rule: `threads` > 1 with the default sync kind means gthread.
        """
        if self.worker_class == "sync" and self.threads > 1:
            return "gthread"
        return self.worker_class

    @property
    def requests_at_once(self) -> int:
        """How many requests one worker may run at the same time: `threads` in a thread
        pool, one per connection (`worker_connections`) for gevent and eventlet."""
        from wsgid.workers import KINDS

        kind = KINDS.get(self.worker_kind)
        if kind is not None and kind.cooperative:
            return self.worker_connections
        return self.threads

    @property
    def limits(self) -> Limits:
        """The bounds on a request that the HTTP parser enforces (`limit_*`, `header_map`)."""
        # Imported here: every command imports this module, `--help` too; only a worker
        # parses HTTP (and wsgid.http.parser loads httptools).
        from wsgid.http import forwarded
        from wsgid.http.parser import Limits

        schemes = {forwarded.environ_key(name) for name in self.secure_scheme_headers}
        return Limits(
            request_line=self.limit_request_line,
            fields=self.limit_request_fields,
            field_size=self.limit_request_field_size,
            body=self.limit_request_body,
            header_map=self.header_map,
            forwarder=frozenset(self.forwarder_headers),
            protected=forwarded.REMOVED | schemes,
        )

    @property
    def forwarding(self) -> Forwarding:
        """Whose forwarded headers count, and what they may change (`forwarded_allow_ips`, ...)."""
        from wsgid.http.allowlist import AllowList
        from wsgid.http.forwarded import Forwarding

        return Forwarding(
            AllowList(self.forwarded_allow_ips),
            self.secure_scheme_headers,
            self.forwarder_headers,
            self.clear_untrusted_forwarded_headers,
            self.remote_addr_from,
            self.request_id_header,
        )

    def proxy_protocol_of(self, listener: str) -> ProxyMode | None:
        """The PROXY protocol a listener (its bind entry) requires; None: none."""
        mode = self.proxy_protocol
        if mode == "off":
            return None
        if self.proxy_protocol_binds and listener not in self.proxy_protocol_binds:
            return None
        return mode

    def tls_of(self, listener: str) -> bool:
        """Whether a listener (its bind entry) serves HTTPS."""
        if self.certfile is None:
            return False
        return not self.tls_binds or listener in self.tls_binds

    @property
    def log_targets(self) -> LogTargets:
        """Where each log goes: `errorlog`, `accesslog`, and their copies at `syslog_addr`."""
        # Imported here: wsgid.logs imports this module (ConfigError).
        from wsgid.logs.targets import LogTargets, parse

        syslog = parse(self.syslog_addr) if self.syslog else None
        return LogTargets(
            error=parse(self.errorlog),
            access=None if self.accesslog is None else parse(self.accesslog),
            error_syslog=syslog,
            access_syslog=None if self.disable_redirect_access_to_syslog else syslog,
        )

    @property
    def hook_imports(self) -> tuple[tuple[str, str], ...]:
        """(hook, "module:function") for each hook that is set, in the model's order."""
        return tuple((name, spec) for name in HOOK_SETTINGS if (spec := getattr(self, name)))


class LoadedSettings(NamedTuple):
    """The effective settings, where each value came from, and what the user asked to do.

    sources maps every field name to "default", "file:PATH" ("file:PATH, line N" from a Python
    config file), "env:NAME" or "flag:OPTION" ("flag:APP" for the positional application
    argument), or "paste:PATH [SECTION]" (a pserve server section; a paste file's [loggers]
    for logconfig).
    """

    settings: RuntimeSettings
    sources: Mapping[str, str]
    command: Command
    json_output: bool = False  # `config show --json`
    show_secrets: bool = False  # `config show --show-secrets`
    # What the user should know but that does not stop wsgid (a gunicorn setting wsgid lacks
    # in a Python config), one line each; `wsgid.cli` prints them.
    warnings: tuple[str, ...] = ()
