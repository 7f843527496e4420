"""The settings as a running server holds them: typed, read-only, no pydantic.

What this module owns:

- `RuntimeSettings`, what every serving process reads: a copy of a validated
  `wsgid.settings.Settings` with one typed, read-only attribute per setting (generated from
  the model into `wsgid.runtime_fields`);
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
from dataclasses import dataclass
from typing import Literal

from wsgid.runtime_fields import SETTING_NAMES, SettingFields

Command = Literal["serve", "check", "config-show", "config-schema"]

# The most workers one master supervises: the bound of the `workers` setting and of TTIN.
# Here because both the settings model and the master need it, and the master must not
# import the model. The master sizes its heartbeat table from it.
MAX_WORKERS = 4096


class ConfigError(Exception):
    """Bad configuration. `str(error)` is the one-paragraph message for the user."""


class RuntimeSettings(SettingFields):
    """The effective settings: one typed, read-only attribute per setting.

    The attributes come from `SettingFields`, generated from the model; mypy rejects a name
    that is not a setting.
    """

    # No __dict__ (the attributes are the generated slots), and so no attribute but a setting.
    __slots__ = ()

    @classmethod
    def copy_of(cls, source: object) -> RuntimeSettings:
        """The settings of `source`, which has one attribute per setting (a validated model)."""
        return cls(**{name: getattr(source, name) for name in SETTING_NAMES})


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings, where each value came from, and what the user asked to do.

    sources maps every field name to "default", "file:PATH", "env:NAME" or "flag:OPTION"
    ("flag:APP" for the positional application argument).
    """

    settings: RuntimeSettings
    sources: Mapping[str, str]
    command: Command
    json_output: bool = False  # `config show --json`
    show_secrets: bool = False  # `config show --show-secrets`
