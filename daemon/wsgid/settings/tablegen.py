"""The source of `wsgid/settings/table.py`, rendered from the settings model.

What this module owns:

- what each setting is, read from its field once (`collect_rows`): its `Option`, whether it
  is a list, a boolean, a table or optional, its default, its description (the docstring under
  the field) and what it accepts in words;
- `values_schema`: the model's pydantic-core schema as a validator of the settings' values,
  returning them as a dict instead of building a model;
- `table_source()`, the text of the generated module holding both, and `TABLE_TARGET`, its
  path. `scripts/gen-schema` writes the file; a unit test fails when it differs from what
  this renders.

Why generated: reading the settings (at every start, HUP and `wsgid check`) needs the
settings' shapes and their validation, not the model. Importing pydantic and building the
model costs about 90 ms of CPU; the generated module and pydantic-core's validator built from
it cost a tenth of that, with the very same validation, since pydantic builds its own
validator from the same schema.

It imports the model, so only the generator, the tests and a loader whose pydantic-core is
not the one the table was rendered with (`wsgid.settings.table_validator`) import it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import pydantic_core
from pydantic.fields import FieldInfo

from wsgid.settings import fields
from wsgid.settings.fields import GROUPS_BY_NAME, Option
from wsgid.settings.model import Settings

TABLE_TARGET = "daemon/wsgid/settings/table.py"

# The model's own functions in its schema, and the plain ones of `fields` that do their work
# on values (the model's take a model, or are bound to its class).
_MODEL_FUNCTIONS = {
    "Settings._no_nul": fields.no_nul,
    "Settings._combined": fields.check_combined_fields,
}


def values_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` (the model's core schema) with the model replaced by its fields.

    Validating with it returns (values, extra, names set) where the model's returns a
    `Settings`; the model's rules that involve several settings run on those values. What
    only the JSON Schema and serialization read (metadata, serialization) is left out.
    """
    values: dict[str, Any] = _values_node(schema)
    return values


def _values_node(node: Any) -> Any:
    if isinstance(node, list | tuple):
        return type(node)(_values_node(item) for item in node)
    if not isinstance(node, Mapping):
        return _plain_function(node) if callable(node) and not isinstance(node, type) else node
    if node.get("type") == "model":
        inner = _values_node(node["schema"])
        extra = node.get("config", {}).get("extra_fields_behavior")
        return inner | ({"extra_behavior": extra} if extra else {})
    return {
        key: _values_node(value)
        for key, value in node.items()
        if key not in ("metadata", "serialization", "ref")
    }


def _plain_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function of `fields` that does `function`'s work on plain values."""
    name = getattr(function, "__qualname__", "")
    if name in _MODEL_FUNCTIONS:
        return _MODEL_FUNCTIONS[name]
    if getattr(function, "__module__", None) == fields.__name__ or function.__name__ == "<lambda>":
        return function
    raise TypeError(f"the settings schema calls {function!r}, which table.py cannot name")


def collect_rows() -> dict[str, tuple[Any, ...]]:
    """Each setting's row of the table, in the model's order (see `specs.SettingSpec`)."""
    rows: dict[str, tuple[Any, ...]] = {}
    for name, info in Settings.model_fields.items():
        options = [m for m in info.metadata if isinstance(m, Option)]
        if len(options) != 1:
            raise TypeError(f"Settings.{name} needs exactly one Option(...) in its metadata")
        option = options[0]
        if option.group not in GROUPS_BY_NAME:
            raise TypeError(f"Settings.{name}: unknown group {option.group!r}")
        annotation = _strip_optional(info.annotation)
        description = info.description or attribute_docstrings().get(name, "")
        rows[name] = (
            name,
            option,
            get_origin(annotation) is tuple,
            annotation is bool,
            get_origin(annotation) is dict,
            _is_optional(info.annotation),
            info.get_default(call_default_factory=True),
            " ".join(description.split()),
            option.accepts or _describe_type(info),
        )
    return rows


_UnionType = type(int | str)  # `X | None` is a types.UnionType, `Optional[X]` a typing.Union


def _is_optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, _UnionType) and type(None) in get_args(annotation)


def _strip_optional(annotation: Any) -> Any:
    if _is_optional(annotation):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _bounds(metadata: Sequence[Any]) -> tuple[str | None, str | None]:
    """The lower and upper bound of a number, in words ("0" or "above 0"; "3600")."""
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge}"
        elif isinstance(item, annotated_types.Gt):
            low = f"above {item.gt}"
        elif isinstance(item, annotated_types.Le):
            high = f"{item.le}"
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
            if low.startswith("above"):
                return f"{noun} {low}, at most {high}"
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} {low}" if low.startswith("above") else f"{noun} >= {low}"
        return noun
    if get_origin(annotation) is tuple:
        item = get_args(annotation)[0]
        if get_origin(item) is Annotated:
            item = get_args(item)[0]
        if get_origin(item) is Literal:
            return "a list of any of " + ", ".join(str(a) for a in get_args(item))
        return "a list of strings"
    if annotation is str:  # no constraint: "" is a value too
        return "a string"
    return "a non-empty string"


@functools.cache
def attribute_docstrings() -> dict[str, str]:
    """The docstring under each field of `Settings`, read from model.py's source.

    Read here, when the table is rendered, rather than by pydantic's
    use_attribute_docstrings, which reads them every time the model is built.
    """
    module = sys.modules[Settings.__module__]
    tree = ast.parse(inspect.getsource(module))
    (body,) = [n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    found: dict[str, str] = {}
    for field, after in itertools.pairwise(body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[field.target.id] = after.value.value
    return found


HEADER = '''\
"""Every setting as data, and the schema of their validation: generated, do not edit.

Rendered from the model in `wsgid.settings.model` by `wsgid.settings.tablegen`
(`scripts/gen-schema` writes it); a unit test fails when this file no longer matches the
model. `ROWS` holds one `specs.SettingSpec`'s fields per setting; `SCHEMA` is the model's
pydantic-core schema with the model replaced by its fields, calling the checks of
`wsgid.settings.fields`; `PYDANTIC_CORE` is the version of pydantic-core it was rendered
with. Nothing here imports pydantic.
"""

# ruff: noqa
# fmt: off
from __future__ import annotations

from typing import Any

'''


def table_source() -> str:
    """The text `wsgid/settings/table.py` must have for the current model."""
    names: set[str] = set()
    rows = "".join(f"    {_source(row, names)},\n" for row in collect_rows().values())
    schema = _source(values_schema(Settings.__pydantic_core_schema__), names)
    imports = ", ".join(sorted(names))
    return (
        HEADER
        + f"from wsgid.settings.fields import {imports}\n\n"
        + f"PYDANTIC_CORE = {pydantic_core.__version__!r}\n\n"
        + f"ROWS: tuple[tuple[Any, ...], ...] = (\n{rows})\n\n"
        + f"SCHEMA: dict[str, Any] = {schema}\n"
    )


def _source(value: Any, names: set[str]) -> str:
    """`value` as Python source; the names of `fields` it uses are added to `names`."""
    if isinstance(value, Option):
        names.add("Option")
        return repr(value)
    if isinstance(value, dict):
        items = (f"{_source(k, names)}: {_source(v, names)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_source(v, names) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(f"{_source(v, names)}, " for v in value).rstrip(" ") + ")"
    if isinstance(value, types.FunctionType):
        if value.__name__ == "<lambda>":  # a default factory: a fresh copy of its value each time
            return f"lambda: {_source(value(), names)}"
        names.add(value.__name__)
        return value.__name__
    if value is dict:
        return "dict"
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    raise TypeError(f"table.py cannot hold {value!r}")
