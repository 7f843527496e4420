"""Settings: the one model of every wsgid option, how it is filled from its sources, and how it
is shown.

| module       | owns                                                                        |
| ------------ | --------------------------------------------------------------------------- |
| `fields`     | `Group`s, `Option` (a setting's table, flags, metavar), shared value checks |
| `model`      | `Settings`, the pydantic model: every setting's type, default, help text    |
| `specs`      | `SettingSpec` and `SPECS`, the model as data; `format_value`; did-you-mean  |
| `sources`    | the platform defaults, `WSGID_*` environment and TOML file, read as layers  |
| `pyfile`     | a gunicorn Python config file (`-c FILE.py`), run and read as a layer       |
| `cmdline`    | the argparse parser generated from the model; argv -> command and a layer;  |
|              | `GUNICORN_CMD_ARGS` read by the same parser                                 |
| `load`       | `load_settings`: each layer validated on its own, then merged in order      |
| `convert`    | `wsgid config import`: a gunicorn Python config file printed as TOML        |
| `schema`     | the JSON Schema of the TOML file                                            |
| `render`     | `config show` (secrets masked), `config schema`, the docs reference         |
| `codegen`    | the source of `wsgid/runtime_fields.py` (`scripts/gen-schema` writes it)    |

Each module imports only those above it in this table.

Rules the package keeps:

- Only reading the configuration needs it: a serving process never imports it, nor pydantic
  (`wsgid.cli` reads the settings in a short-lived child; see `wsgid.runtime`).
- Nothing here reads `os.environ` or prints: the environment is passed in, so a HUP reload
  and the tests see exactly what they pass. (argparse's own `--help`/`--version` are the
  one exception: they print and raise `SystemExit(0)`.)
- The text of every `ConfigError` (the class lives in `wsgid.runtime`) is the one paragraph a
  user sees for any bad configuration: it names the source (file path, environment variable
  or flag), the key, the bad value and what is accepted, with a did-you-mean for misspelt
  names.

The names below are the package's interface; import them from `wsgid.settings`.
"""

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
