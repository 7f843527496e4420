"""The settings as a running server holds them: plain values, no pydantic.

What this module owns:

- `ConfigError`, the error of any bad configuration (its text is the message for the user);
- `LoadedSettings`: the effective settings, where each value came from, and the command;
- `FrozenSettings`: a read-only copy of a validated `wsgid.settings.Settings`, one plain
  attribute per setting, with the model's names, types and values.

Why it is apart from `wsgid.settings`: importing pydantic and building the model costs a
process about 11 MiB and a tenth of a second, and only reading the configuration needs it.
`wsgid.cli` reads it in a short-lived child process and hands the master a `FrozenSettings`,
so the master, and by fork every worker, never imports pydantic. The rest of wsgid reads
settings as attributes and works from either. This module must not import pydantic or
`wsgid.settings` (tests/integration/test_lean_processes.py checks a worker has neither).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from wsgid.settings import Settings

Command = Literal["serve", "check", "config-show", "config-schema"]

# The most workers one master supervises: the bound of the `workers` setting and of TTIN.
# Here because both the settings model and the master need it, and the master must not
# import the model. The master sizes its heartbeat table from it.
MAX_WORKERS = 4096


class ConfigError(Exception):
    """Bad configuration. `str(error)` is the one-paragraph message for the user."""


class FrozenSettings:
    """The values of a validated `Settings` as read-only attributes (`settings.workers`)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # Only called for a name that is not a setting.
        raise AttributeError(f"there is no setting named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are read-only; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"settings are read-only; cannot delete {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"FrozenSettings({fields})"


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings, where each value came from, and what the user asked to do.

    sources maps every field name to "default", "file:PATH", "env:NAME" or "flag:OPTION"
    ("flag:APP" for the positional application argument).
    """

    settings: Settings | FrozenSettings
    sources: Mapping[str, str]
    command: Command
    json_output: bool = False  # `config show --json`
    show_secrets: bool = False  # `config show --show-secrets`
