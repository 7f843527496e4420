"""Loading settings in process for the unit tests: the effective settings, or the error text.

`load_settings` reads argv (without the program name) and an environment mapping; these
spare each test file its own copy of that call and of catching its `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from wsgid.settings import ConfigError, LoadedSettings, load_settings

APP = "pkg.mod:app"  # an app name: loading settings does not import it


def load(argv: Sequence[str] = (APP,), env: Mapping[str, str] | None = None) -> LoadedSettings:
    """The settings `argv` and `env` give (the environment is only `env`)."""
    return load_settings(list(argv), env or {})


def error_of(argv: Sequence[str] = (APP,), env: Mapping[str, str] | None = None) -> str:
    """The message of the ConfigError `argv` and `env` give; fails the test if none."""
    with pytest.raises(ConfigError) as info:
        load(argv, env)
    return str(info.value)
