"""Settings: the one model of every wsgid option, how it is filled from its sources, and how it
is shown.

| module       | owns                                                                        |
| ------------ | --------------------------------------------------------------------------- |
| `fields`     | `Group`s, `Option` (a setting's table, flags, metavar), the value checks     |
| `table`      | generated from the model: each setting as data, the schema of its checks    |
| `specs`      | `SettingSpec` and `SPECS`, the table's rows; `format_value`; did-you-mean   |
| `sources`    | the platform defaults, `WSGID_*` environment and TOML file, read as layers  |
| `pyfile`     | a gunicorn Python config file (`-c FILE.py`), run and read as a layer       |
| `cmdline`    | the argparse parser generated from the model; argv -> command and a layer;  |
|              | `GUNICORN_CMD_ARGS` read by the same parser                                 |
| `load`       | `load_settings`: each layer validated on its own, then merged in order,     |
|              | by pydantic-core's validator of the table's schema                          |
| `annotated`  | the annotated types of the fields (pydantic's constraints, validators)      |
| `model`      | `Settings`, the pydantic model: every setting's type, default, help text    |
| `convert`    | `wsgid config import`: a gunicorn Python config file printed as TOML        |
| `schema`     | the JSON Schema of the TOML file                                            |
| `render`     | `config show` (secrets masked), `config schema`, the docs reference         |
| `codegen`    | the source of `wsgid/runtime_fields.py` (`scripts/gen-schema` writes it)    |
| `tablegen`   | the source of `table.py` (`scripts/gen-schema` writes it)                   |

Each module imports only those above it in this table, except that `load` builds its
validator from the model (`tablegen`) when the installed pydantic-core is not the one the table
was rendered with.

Rules the package keeps:

- Only reading the configuration needs it: a serving process never imports it, nor pydantic
  (`wsgid.cli` reads the settings in a short-lived child; see `wsgid.runtime`). Reading them
  imports neither pydantic nor the model either, only pydantic-core's compiled module
  (`table`, `load`; `wsgid.deferred_modules` leaves its package's Python out): the
  model is imported by what describes the settings (`config show`, the schema, the docs, the
  generators) and by `wsgid config import`. So this package imports its modules when a name
  below is first asked for.
- Nothing here reads `os.environ` or prints: the environment is passed in, so a HUP reload
  and the tests see exactly what they pass. (argparse's own `--help`/`--version` are the
  one exception: they print and raise `SystemExit(0)`.)
- The text of every `ConfigError` (the class lives in `wsgid.runtime`) is the one paragraph a
  user sees for any bad configuration: it names the source (file path, environment variable
  or flag), the key, the bad value and what is accepted, with a did-you-mean for misspelt
  names.

The names below are the package's interface; import them from `wsgid.settings`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgid.runtime import ConfigError, LoadedSettings
    from wsgid.settings.cmdline import EPILOG, USAGE, build_parser
    from wsgid.settings.convert import import_python_config
    from wsgid.settings.fields import ENV_PREFIX, GROUPS, TABLES, Group, Option
    from wsgid.settings.load import load_settings
    from wsgid.settings.model import Settings
    from wsgid.settings.render import (
        MASK,
        REFERENCE_BEGIN,
        REFERENCE_END,
        masked,
        render_reference,
        schema_text,
        show_json,
        show_table,
        splice_reference,
    )
    from wsgid.settings.schema import file_json_schema
    from wsgid.settings.specs import SPECS, SettingSpec, format_value

# Each name of the interface, and the module that holds it: imported when first asked for.
_HOMES = {
    "ConfigError": "wsgid.runtime",
    "LoadedSettings": "wsgid.runtime",
    "EPILOG": "wsgid.settings.cmdline",
    "USAGE": "wsgid.settings.cmdline",
    "build_parser": "wsgid.settings.cmdline",
    "import_python_config": "wsgid.settings.convert",
    "ENV_PREFIX": "wsgid.settings.fields",
    "GROUPS": "wsgid.settings.fields",
    "TABLES": "wsgid.settings.fields",
    "Group": "wsgid.settings.fields",
    "Option": "wsgid.settings.fields",
    "load_settings": "wsgid.settings.load",
    "Settings": "wsgid.settings.model",
    "MASK": "wsgid.settings.render",
    "REFERENCE_BEGIN": "wsgid.settings.render",
    "REFERENCE_END": "wsgid.settings.render",
    "masked": "wsgid.settings.render",
    "render_reference": "wsgid.settings.render",
    "schema_text": "wsgid.settings.render",
    "show_json": "wsgid.settings.render",
    "show_table": "wsgid.settings.render",
    "splice_reference": "wsgid.settings.render",
    "file_json_schema": "wsgid.settings.schema",
    "SPECS": "wsgid.settings.specs",
    "SettingSpec": "wsgid.settings.specs",
    "format_value": "wsgid.settings.specs",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # asked once
    return value


__all__ = [
    "ENV_PREFIX",
    "EPILOG",
    "GROUPS",
    "MASK",
    "REFERENCE_BEGIN",
    "REFERENCE_END",
    "SPECS",
    "TABLES",
    "USAGE",
    "ConfigError",
    "Group",
    "LoadedSettings",
    "Option",
    "SettingSpec",
    "Settings",
    "build_parser",
    "file_json_schema",
    "format_value",
    "import_python_config",
    "load_settings",
    "masked",
    "render_reference",
    "schema_text",
    "show_json",
    "show_table",
    "splice_reference",
]
