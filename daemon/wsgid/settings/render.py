"""How the settings are shown to people: `wsgid config show`, `config schema` and the
reference section of docs/configuration.md.

What this module owns:

- `show_table` and `show_json`: every effective setting, its value and where it came from,
  with secrets masked (`masked`) unless `--show-secrets`;
- `schema_text`: what `wsgid config schema` prints and config/wsgid.schema.json holds;
- `render_reference` and `splice_reference`: the generated reference section of
  docs/configuration.md (`scripts/gen-schema` writes it; a test keeps it in step).

Everything here is rendered from the model (`SPECS`, `GROUPS`), so it cannot drift from it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from wsgid.runtime import LoadedSettings
from wsgid.settings.fields import GROUPS
from wsgid.settings.schema import file_json_schema
from wsgid.settings.specs import SPECS, SettingSpec, format_value

REFERENCE_BEGIN = "<!-- BEGIN REFERENCE: generated from wsgid.settings by scripts/gen-schema -->"
REFERENCE_END = "<!-- END REFERENCE -->"

# --------------------------------------------------------------------------------------------
# config show / config schema
# --------------------------------------------------------------------------------------------


# What `config show` prints in place of a secret (unless --show-secrets).
MASK = "<hidden>"
# Settings whose values are all secrets' carriers: raw_env's NAME=VALUE pairs are the
# application's environment, where its passwords and keys usually live.
SECRET_SETTINGS = frozenset({"raw_env"})
# Keys of a table setting (logconfig_dict) whose values are secrets; matched as parts of
# the lower-cased key with `-` as `_` (`db_password`, `SENTRY_DSN`, `X-Api-Key`).
SECRET_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "token", "api_key", "apikey",
    "private_key", "access_key", "credential", "dsn", "authorization",
)  # fmt: skip
# The password of a URL's userinfo: scheme://user:PASSWORD@host.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*):[^/?#@\s]*@")


def _secret_key(key: object) -> bool:
    text = str(key).lower().replace("-", "_")
    return any(part in text for part in SECRET_KEY_PARTS)


def _masked_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if _secret_key(k) else _masked_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_masked_value(v) for v in value)
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{MASK}@", value)
    return value


def masked(name: str, value: Any) -> Any:
    """`value` of setting `name` as `config show` prints it by default: secrets replaced.

    Masked: every raw_env value (the name stays), the value of every key that looks like a
    secret's (SECRET_KEY_PARTS) anywhere in a table setting, and the password of any URL.
    """
    if name in SECRET_SETTINGS and isinstance(value, (list, tuple)):
        return tuple(f"{item.partition('=')[0]}={MASK}" if "=" in item else MASK for item in value)
    return _masked_value(value)


def _shown(loaded: LoadedSettings, name: str) -> Any:
    value = getattr(loaded.settings, name)
    return value if loaded.show_secrets else masked(name, value)


def show_table(loaded: LoadedSettings) -> str:
    """Every effective setting, its value as TOML would spell it, and where it came from."""
    rows = [("setting", "value", "source")]
    for name, spec in SPECS.items():
        value = _shown(loaded, name)
        rows.append((name, format_value(value, octal=spec.option.octal), loaded.sources[name]))
    name_width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{n:<{name_width}}  {v:<{value_width}}  {s}".rstrip() for n, v, s in rows]
    settings = loaded.settings
    if settings.worker_kind != settings.worker_class:  # gunicorn's rule, easy to miss
        lines += [
            "",
            f"worker_class {settings.worker_class} with threads {settings.threads} runs the"
            f" {settings.worker_kind} worker, as in gunicorn.",
        ]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def show_json(loaded: LoadedSettings) -> str:
    """`config show --json`: {name: {"value": ..., "source": ...}} in the model's order."""
    document = {
        name: {"value": _jsonable(_shown(loaded, name)), "source": loaded.sources[name]}
        for name in SPECS
    }
    return json.dumps(document, indent=2) + "\n"


def schema_text() -> str:
    """What `wsgid config schema` prints, and what config/wsgid.schema.json must contain."""
    return json.dumps(file_json_schema(), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Reference documentation
# --------------------------------------------------------------------------------------------


def _flags_text(spec: SettingSpec) -> str:
    if spec.option.positional and not spec.flags:
        return f"`{spec.option.metavar}` (positional)"
    metavar = "" if spec.is_bool else f" {spec.option.metavar}"
    flags = [f"`{flag}{metavar}`" for flag in spec.flags]
    if spec.is_bool and spec.long_flag:
        flags.append(f"`--no-{spec.long_flag[2:]}`")
    return ", ".join(flags)


def _file_text(spec: SettingSpec) -> str:
    if not spec.option.in_file:
        return "not allowed in the file"
    if spec.table:
        return f"`{spec.name}` in `[{spec.table}]`, or at the top level"
    return f"`{spec.name}` at the top level"


def render_reference() -> str:
    """The generated reference section of docs/configuration.md (between the markers)."""
    out: list[str] = [
        REFERENCE_BEGIN,
        "",
        "## Reference",
        "",
        "Generated from the settings model; edit `daemon/wsgid/settings/model.py`, then run",
        "`scripts/gen-schema`. A test fails when this section is out of date.",
        "",
        "| setting | flags | environment | default |",
        "| --- | --- | --- | --- |",
    ]
    for spec in SPECS.values():
        out.append(
            f"| [`{spec.name}`](#{spec.name}) | {_flags_text(spec)} | `{spec.env_var}` "
            f"| {_default_md(spec)} |"
        )
    for group in GROUPS:
        members = [s for s in SPECS.values() if s.option.group == group.name]
        if not members:
            continue
        heading = f"`[{group.name}]` {group.title}" if group.table else group.title
        out += ["", f"### {heading}", "", group.description]
        for spec in members:
            out += [
                "",
                f"#### `{spec.name}`",
                "",
                spec.description,
                "",
                "| | |",
                "| --- | --- |",
                f"| accepts | {spec.accepts} |",
                f"| default | {_default_md(spec)} |",
                f"| flags | {_flags_text(spec)} |",
                f"| environment | `{spec.env_var}` |",
                f"| file | {_file_text(spec)} |",
            ]
    out += ["", REFERENCE_END]
    return "\n".join(out) + "\n"


def _default_md(spec: SettingSpec) -> str:
    # A default described in words ("$WEB_CONCURRENCY, or 1") reads better as prose.
    if spec.option.default_doc:
        return spec.option.default_doc
    if spec.default is None:
        return "unset"
    if spec.default == ():
        return "empty"
    return f"`{spec.default_text}`"


def splice_reference(document: str) -> str:
    """`document` with its reference section replaced by a freshly rendered one."""
    start = document.find(REFERENCE_BEGIN)
    end = document.find(REFERENCE_END)
    if start < 0 or end < start:
        raise ValueError("the document has no reference markers")
    rest = document[end + len(REFERENCE_END) :]
    return document[:start] + render_reference().rstrip("\n") + rest
