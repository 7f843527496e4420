"""gunicorn Python configuration files (`-c gunicorn.conf.py`, `-c python:MODULE`) read into a
`Layer`, as gunicorn reads them: the file is run (`wsgid.pyconfig.execute`) and its module-level
names that are settings are taken.

What this module owns:

- which names of a run config are settings, and what each value becomes: a hook function a
  `python-config:LOCATION:NAME` reference the master resolves (`wsgid.pyconfig`), a class given
  as `worker_class` its dotted path, a string where a list is expected a list (as in TOML),
  None the setting left unset where gunicorn takes None for it (`sendfile = None`);
- the line each name was last assigned on, found with `ast`, for error messages and for the
  `sources` shown by `config show` ("file:/srv/app/gunicorn.conf.py, line 7");
- what is said about every other name, each a warning (the file runs, as under gunicorn): a
  setting gunicorn has and wsgid lacks; a lower-case name close to a setting's, with a
  did-you-mean (gunicorn would ignore the typo without a word, but refusing it would refuse
  files gunicorn runs: `worker_count = 4` is a helper as often as a typo); any other name,
  taken for a helper of the file's own and listed in one warning. Private names (`_x`),
  modules and imported names are the file's business and pass silently;
- gunicorn's `check_config` and `print_config`, which are commands in wsgid: true, they ask
  for `wsgid check` or `wsgid config show`, as the flags do; and `protocol`, refused unless
  it is "http".

`scan` is shared with `wsgid config import` (`convert.py`), which needs the raw values.
"""

from __future__ import annotations

import ast
import contextlib
import os
import types
from dataclasses import dataclass, field
from typing import Any

from wsgid import pyconfig
from wsgid.runtime import Command, ConfigError
from wsgid.settings.sources import Entry, Layer, config_not_found, split_items
from wsgid.settings.specs import (
    ALIASES,
    COMMAND_SETTINGS,
    FILE_SPECS,
    RENAMED,
    did_you_mean,
    format_value,
    gunicorn_only,
    refused,
)

# Every setting of gunicorn 20.1 and of its later releases (gunicorn.config.KNOWN_SETTINGS, up
# to 27), whether wsgid has it or not: a name here that is not one of wsgid's is a setting
# wsgid lacks, not a typo.
GUNICORN_SETTINGS = frozenset(
    """
    access_log_format accesslog asgi_disconnect_grace_period asgi_lifespan asgi_loop backlog
    bind ca_certs capture_output casefold_http_method cert_reqs certfile chdir check_config
    child_exit ciphers config control_socket control_socket_disable control_socket_mode daemon
    default_proc_name dirty_apps dirty_graceful_timeout dirty_post_fork dirty_threads
    dirty_timeout dirty_worker_exit dirty_worker_init dirty_workers
    disable_redirect_access_to_syslog do_handshake_on_connect dogstatsd_tags
    enable_backlog_metric enable_stdio_inheritance errorlog forwarded_allow_ips
    forwarder_headers graceful_timeout group header_map http2_cleartext
    http2_initial_window_size http2_max_concurrent_streams http2_max_frame_size
    http2_max_header_list_size http_parser http_protocols initgroups keepalive keyfile
    limit_request_field_size limit_request_fields limit_request_line logconfig logconfig_dict
    logconfig_json logger_class loglevel max_requests max_requests_jitter nworkers_changed
    on_dirty_starting on_exit on_reload on_starting paste permit_obsolete_folding
    permit_unconventional_http_method permit_unconventional_http_version pidfile post_fork
    post_request post_worker_init pre_exec pre_fork pre_request preload_app print_config
    proc_name protocol proxy_allow_ips proxy_protocol pythonpath raw_env raw_paste_global_conf
    reload reload_engine reload_extra_files reuse_port root_path secure_scheme_headers sendfile
    spew ssl_context ssl_version statsd_host statsd_prefix strip_header_spaces
    suppress_ragged_eofs syslog syslog_addr syslog_facility syslog_prefix threads timeout
    tmp_upload_dir tolerate_dangerous_framing umask user uwsgi_allow_ips when_ready
    websocket_max_message_size worker_abort worker_class worker_connections worker_exit worker_int
    worker_tmp_dir workers wsgi_app
    """.split()  # noqa: SIM905 (a list of 120 names reads better as words than as a column)
)

# The settings whose gunicorn validator takes None (validate_bool, validate_string,
# validate_list_string ...): `sendfile = None` is gunicorn's own default, and configs that spell
# out every default write `errorlog = None` or `raw_env = None`. Such a None is the setting
# left unset; for the other settings (`workers = None`) gunicorn refuses it, and so does wsgid.
GUNICORN_TAKES_NONE = frozenset(
    """
    access_log_format accesslog bind ca_certs capture_output certfile ciphers control_socket
    control_socket_disable daemon default_proc_name disable_redirect_access_to_syslog
    do_handshake_on_connect dogstatsd_tags enable_backlog_metric enable_stdio_inheritance
    errorlog forwarded_allow_ips forwarder_headers group header_map initgroups keyfile logconfig
    logconfig_json logger_class loglevel paste pidfile preload_app proc_name protocol
    proxy_allow_ips proxy_protocol pythonpath raw_env raw_paste_global_conf reload
    reload_extra_files reuse_port sendfile spew ssl_version statsd_host statsd_prefix
    suppress_ragged_eofs syslog syslog_addr syslog_facility syslog_prefix tmp_upload_dir user
    worker_class worker_tmp_dir wsgi_app
    """.split()  # noqa: SIM905 (as GUNICORN_SETTINGS)
)

# How close an unknown name must be to a setting's to be refused as its misspelling. Higher
# than the did-you-mean of TOML keys: a Python config also holds the file's own helpers
# (`cores = multiprocessing.cpu_count()`), which must not be mistaken for typos of `workers`.
TYPO_CUTOFF = 0.8


@dataclass
class Found:
    """A module-level name of the config and its value, with where it was assigned."""

    name: str
    value: Any
    line: int | None = None
    # The expression assigned, when it is not a literal (`multiprocessing.cpu_count() * 2 + 1`):
    # its value is the one this run computed.
    computed: str | None = None


@dataclass
class Scan:
    """A run Python config, its names sorted by what they are to wsgid."""

    location: str  # as given: an absolute path, or python:MODULE
    path: str | None  # the file that ran (a module's file), for messages; None if unknown
    module: types.ModuleType
    settings: list[Found] = field(default_factory=list)
    gunicorn_only: list[Found] = field(default_factory=list)
    helpers: list[Found] = field(default_factory=list)
    close: list[tuple[Found, str]] = field(default_factory=list)  # and the setting it is near

    @property
    def shown(self) -> str:
        """The config as messages name it: its path, or `python:MODULE (path)`."""
        if not self.location.startswith(pyconfig.MODULE_PREFIX) or self.path is None:
            return self.path or self.location
        return f"{self.location} ({self.path})"

    @property
    def heading(self) -> str:
        """`Config file PATH` (or `Config module python:MODULE (PATH)`), to open a message."""
        kind = "module" if self.location.startswith(pyconfig.MODULE_PREFIX) else "file"
        return f"Config {kind} {self.shown}"

    def where(self, found: Found) -> str:
        """`Config file PATH, line N`: what a message about one name opens with."""
        return self.heading + (f", line {found.line}" if found.line else "")

    def label(self, found: Found) -> str:
        """The `sources` entry of a setting taken from it: `file:PATH, line N`."""
        return f"file:{self.path or self.location}" + (f", line {found.line}" if found.line else "")


@dataclass
class _Binding:
    line: int
    computed: str | None = None


def _bindings(source: bytes) -> tuple[dict[str, _Binding], set[str]]:
    """Each module-level name and the last statement that binds it; the names imports bind last.

    Statements nested in `if`, `try`, `with` and loops at the top level count (they run at
    module level); the bodies of functions and classes do not.
    """
    text = source.decode("utf-8", "replace")
    lines: dict[str, _Binding] = {}
    imported: set[str] = set()

    def computed(node: ast.stmt) -> str | None:
        value = getattr(node, "value", None)
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or value is None:
            return None
        try:
            ast.literal_eval(value)
        except ValueError:
            return ast.get_source_segment(text, value)
        return None

    def bind(name: str, node: ast.stmt, by_import: bool = False) -> None:
        lines[name] = _Binding(node.lineno, computed(node))
        if by_import:
            imported.add(name)
        else:
            imported.discard(name)

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bind(alias.asname or alias.name.split(".")[0], node, by_import=True)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bind(node.name, node)
                continue
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                targets = [node.target]
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        bind(leaf.id, node)
            for attr in ("body", "orelse", "finalbody"):
                nested = getattr(node, attr, None)
                if isinstance(nested, list):
                    visit(nested)
            for handler in getattr(node, "handlers", ()):
                visit(handler.body)

    # It ran, so it parses; a module that did not come from this source just has no lines.
    with contextlib.suppress(SyntaxError, ValueError):
        visit(ast.parse(source).body)
    return lines, imported


def _source_of(module: types.ModuleType) -> tuple[str | None, bytes]:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None, b""
    try:
        with open(path, "rb") as fp:
            return path, fp.read()
    except OSError:
        return path, b""


def _typo_candidates() -> dict[str, str]:
    candidates = {alias: name for alias, name in ALIASES.items() if name in FILE_SPECS}
    candidates.update({name: name for name in GUNICORN_SETTINGS if name != "config"})
    return candidates


def scan(location: str, given_by: str) -> Scan:
    """Run the Python config at `location` and sort its names; ConfigError for a refused one."""
    path = pyconfig.strip_file_prefix(location)
    is_module = location.startswith(pyconfig.MODULE_PREFIX)
    if not is_module and not os.path.exists(path):
        raise config_not_found(path, given_by)
    try:
        module = pyconfig.execute(location)
    except pyconfig.PythonConfigError as exc:
        kind = "module" if is_module else "file"
        raise ConfigError(f"Config {kind} {location} (given by {given_by}) {exc}.") from None
    source_path, source = _source_of(module)
    lines, imported = _bindings(source)
    result = Scan(location, source_path if is_module else path, module)
    candidates = _typo_candidates()
    for name, value in vars(module).items():
        binding = lines.get(name)
        found = Found(name, value)
        if binding is not None:
            found.line, found.computed = binding.line, binding.computed
        if name.startswith("_"):
            continue
        if name == "config":
            raise ConfigError(
                f'{result.where(found)}: "config" cannot be set inside a config file; choose '
                f"the file with -c/--config or WSGID_CONFIG."
            )
        message = refused(name, f'{result.where(found)}: "{name}"')
        if message is not None:
            raise ConfigError(message)
        if name in RENAMED:
            found.name = name = RENAMED[name]  # gunicorn's other name of the setting
        if name in FILE_SPECS:
            if value is None and name in GUNICORN_TAKES_NONE:
                continue  # the setting left unset, as gunicorn reads it
            result.settings.append(found)
        elif name in GUNICORN_SETTINGS:
            if name == "protocol":
                _check_protocol(result, found)
            result.gunicorn_only.append(found)
        elif isinstance(value, types.ModuleType) or name in imported:
            continue
        else:
            # An upper-case name is a constant of the file's (WORKERS = 4), never a typo.
            hint = None if name.isupper() else did_you_mean(name, candidates, cutoff=TYPO_CUTOFF)
            if hint is not None:
                result.close.append((found, hint))
            else:
                result.helpers.append(found)
    return result


def _check_protocol(result: Scan, found: Found) -> None:
    """gunicorn's `protocol`: "http" is what wsgid speaks; any other value is refused, since
    ignoring it would answer a uwsgi_pass proxy in HTTP, which it cannot read."""
    value = found.value
    if isinstance(value, str) and value.strip().lower() == "http":
        return
    raise ConfigError(
        f"{result.where(found)}: protocol = {shown(value)} is refused: wsgid serves only HTTP "
        f'(HTTP/1.1), not gunicorn\'s "uwsgi" protocol. Point the proxy at it over HTTP (nginx:'
        f' proxy_pass instead of uwsgi_pass) and remove the setting, or set protocol = "http".'
    )


def setting_value(result: Scan, found: Found) -> Any:
    """What a Python value is as a setting's value (still to be validated by the model)."""
    spec = FILE_SPECS[found.name]
    value = found.value
    if spec.option.group == "hooks" and callable(value):
        return pyconfig.hook_reference(result.location, found.name)
    if found.name == "worker_class" and isinstance(value, type):
        return _dotted_class(result, found)
    if spec.is_list:
        if isinstance(value, str):
            value = split_items(spec, value, always=False)
        elif isinstance(value, list):
            value = tuple(value)
        if found.name == "forwarder_headers" and isinstance(value, tuple):
            value = tuple(v for v in value if v not in _ignored_forwarder_headers(value))
    return value


def _ignored_forwarder_headers(value: Any) -> list[str]:
    """The names of a forwarder_headers list gunicorn takes and ignores: it maps a trusted
    proxy's header into the environ under its own name only when the name has an underscore
    (`SCRIPT_NAME`), and every other header is in the environ anyway. Configs list
    `X-FORWARDED-FOR` there, which gunicorn runs without effect and wsgid's names would
    refuse."""
    items = value if isinstance(value, (tuple, list)) else ()
    return [v for v in items if isinstance(v, str) and "_" not in v]


def _dotted_class(result: Scan, found: Found) -> str:
    cls = found.value
    if cls.__module__ == pyconfig.CONFIG_MODULE or "<locals>" in cls.__qualname__:
        raise ConfigError(
            f"{result.where(found)}: worker_class is a class defined in the config itself; "
            f"wsgid imports the worker class by name, so define it in a module and write "
            f'worker_class = "MODULE.{cls.__qualname__}".'
        )
    return f"{cls.__module__}.{cls.__qualname__}"


def shown(value: Any) -> str:
    """A value of the file as messages quote it."""
    if value is None or isinstance(value, bool):
        return repr(value)  # Python's spelling: the user wrote it in Python
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return f"function {value.__qualname__}"
    if isinstance(value, type):
        return f"class {value.__qualname__}"
    if isinstance(value, (str, int, float, bool, list, tuple, dict)) or value is None:
        return format_value(value)
    return repr(value)


def read_python_file(location: str, given_by: str) -> tuple[Layer, tuple[str, ...], Command]:
    """The settings a Python config gives, the warnings about its other names, and the command
    its `check_config = True` or `print_config = True` asks for ("serve" without them)."""
    result = scan(location, given_by)
    command = _command(result)
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    for found in result.settings:
        value = setting_value(result, found)
        entries[found.name] = Entry(
            value,
            result.label(found),
            f"{result.where(found)}: {found.name} = {shown(found.value)}",
        )
        if found.name == "forwarder_headers":
            raw = found.value
            if isinstance(raw, str):
                raw = split_items(FILE_SPECS[found.name], raw, always=False)
            ignored = _ignored_forwarder_headers(raw)
            if ignored:
                warnings.append(
                    f"{result.where(found)}: forwarder_headers names {', '.join(ignored)}, "
                    f"without an underscore: such a header reaches the environ anyway "
                    f"(HTTP_...), and gunicorn maps only names with an underscore "
                    f"(SCRIPT_NAME, PATH_INFO, REMOTE_USER); ignored, as gunicorn ignores it."
                )
    warnings += [
        f"{gunicorn_only(found.name, result.where(found))}; it is ignored."
        for found in result.gunicorn_only
        if found.name not in COMMAND_SETTINGS
    ]
    warnings += [
        f'{result.where(found)}: "{found.name}" is not a setting, and is ignored. Did you mean'
        f' "{hint}"? (A leading underscore, _{found.name}, marks a helper of the file\'s own.)'
        for found, hint in result.close
    ]
    if result.helpers:
        listed = ", ".join(
            found.name + (f" (line {found.line})" if found.line else "") for found in result.helpers
        )
        warnings.append(
            f"{result.heading}: {listed} "
            f"{'is not a setting' if len(result.helpers) == 1 else 'are not settings'}; "
            f"taken for the file's own helpers and ignored (a leading underscore, "
            f"_{result.helpers[0].name}, keeps a helper out of this warning)."
        )
    return Layer("python", entries), tuple(warnings), command


def _command(result: Scan) -> Command:
    """What `check_config` / `print_config` set to true ask for, as the flags do: gunicorn
    checks (or prints) and exits instead of serving."""
    asked = [f for f in result.gunicorn_only if f.name in COMMAND_SETTINGS and _true(f.value)]
    if len(asked) > 1:
        raise ConfigError(
            f"{result.heading}: check_config and print_config are both true; set one (as "
            f"--check-config and --print-config are one or the other)."
        )
    return COMMAND_SETTINGS[asked[0].name] if asked else "serve"


def _true(value: Any) -> bool:
    # gunicorn's validate_bool: a boolean, or the string "true" in any case.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
