"""Find and import the WSGI application named by `app`, or load the one of the Paste
Deploy file named by `paste`.

Owns: the `module:attr` syntax and its variants, loading a paste file's application
(PasteDeploy is imported only then), the import path (`chdir`, `pythonpath`) and the
messages a user sees when the app cannot be loaded.

Accepted forms (gunicorn's, plus a default attribute):
- `module:attr` and `module:attr.sub` (dotted attribute lookup);
- `module:factory()` and `module:factory(arg, key=value)` with literal
  arguments only (parsed with `ast`, never evaluated as code);
- `module` alone: its `application`, else its `app`.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgid.runtime import RuntimeSettings

WSGIApp = Callable[..., Any]


class AppLoadError(Exception):
    """The application cannot be loaded; str() is the message for the user."""


def prepare_import_path(chdir: str | None, pythonpath: tuple[str, ...] | list[str]) -> None:
    """Apply `chdir` and `pythonpath` so the app's imports resolve as the user expects."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppLoadError(f"cannot change directory to {chdir!r}: {exc.strerror}") from None
    extend_import_path(None, pythonpath)


def working_directory() -> str:
    """The working directory as the user named it: `$PWD` when it is the same directory as
    `os.getcwd()`, else that.

    A deploy that switches a release symlink (`current -> releases/42`) and started the
    server in `current` wants the app found through the link, resolved again at each reload
    and upgrade; `os.getcwd()` gives the release it pointed to at start, for ever.
    gunicorn takes `$PWD` the same way.
    """
    cwd = os.getcwd()
    named = os.environ.get("PWD")
    if named and named != cwd and os.path.isabs(named):
        try:
            if os.path.samefile(named, cwd):
                return named
        except OSError:
            pass
    return cwd


def extend_import_path(chdir: str | None, pythonpath: tuple[str, ...] | list[str]) -> None:
    """Put on sys.path what a worker finds the app by: `chdir` (else the working directory),
    then `pythonpath` before it, relative entries taken from `chdir`. The master does it
    without changing directory, so that the hooks and the logging configuration it imports
    are found where the app's own modules are (gunicorn's master is in `chdir` already)."""
    base = os.path.abspath(chdir) if chdir else working_directory()
    for path in [base, *(os.path.join(base, entry) for entry in reversed(pythonpath))]:
        path = os.path.abspath(path)
        if path not in sys.path:
            sys.path.insert(0, path)


def load_app(settings: RuntimeSettings) -> WSGIApp:
    """Load the app `settings.app`, or the one of the paste file `settings.paste`, after
    applying chdir and pythonpath."""
    load: Callable[[], WSGIApp]
    if settings.paste:
        paste, global_conf = settings.paste, settings.raw_paste_global_conf
        named, load = f"paste {paste!r}", lambda: load_paste(paste, global_conf)
    elif settings.app:
        spec = settings.app
        named, load = f"app {spec!r}", lambda: import_app(spec)
    else:
        raise AppLoadError(
            "no application given: pass it as the first argument (e.g. "
            "`wsgid myproject.wsgi:application`) or set `app` in the config file"
        )
    prepare_import_path(settings.chdir, settings.pythonpath)
    try:
        app = load()
    except SystemExit as exc:
        # sys.exit() in the app's module (or factory) is a failure to load it, not a
        # request to stop wsgid. sys.exit("message") means status 1 and that message.
        code = exc.code
        status = f"{code or 0}" if code is None or isinstance(code, int) else f"1 ({code})"
        raise AppLoadError(
            f"{named}: the application exited with status {status} while being imported"
        ) from None
    except KeyboardInterrupt:
        raise AppLoadError(
            f"{named}: the application raised KeyboardInterrupt while being imported"
        ) from None
    kind = settings.worker_kind
    if is_tornado_app(app) and kind != "tornado" and "." not in kind:
        raise AppLoadError(
            f"{named}: {type(app).__name__} is a tornado application, not a WSGI one:"
            " serve it with the tornado worker (-k tornado)"
        )
    return app


def is_tornado_app(app: object) -> bool:
    """Whether `app` is a tornado Application (or another tornado
    `HTTPServerConnectionDelegate`, a router): the tornado worker serves it on its IOLoop.
    Never imports tornado: an app that is one has imported it."""
    httputil = sys.modules.get("tornado.httputil")
    return httputil is not None and isinstance(app, httputil.HTTPServerConnectionDelegate)


def load_paste(spec: str, global_conf: Mapping[str, str]) -> WSGIApp:
    """The application of the paste file `spec` (FILE or FILE#NAME), built by Paste Deploy as
    gunicorn has it built: with the global variables `global_conf` (`raw_paste_global_conf`),
    and relative paths in the file resolved against the working directory."""
    path, _, name = spec.partition("#")
    try:
        from paste.deploy import loadapp
    except ModuleNotFoundError as exc:
        if exc.name not in ("paste", "paste.deploy"):
            raise
        raise AppLoadError(
            f"paste {spec!r}: serving a Paste Deploy file needs the PasteDeploy package,"
            " which is not installed; install it (pip install PasteDeploy) where wsgid runs"
        ) from None
    try:
        app = loadapp(
            f"config:{path}",
            name=name or None,
            relative_to=os.getcwd(),
            global_conf=dict(global_conf),
        )
    except Exception as exc:
        if type(exc) is LookupError:  # Paste Deploy's own: no such section, no entry point
            raise AppLoadError(f"paste {spec!r}: {exc}") from None
        raise AppLoadError(
            f"paste {spec!r}: loading the application failed:\n"
            + _format_tail(exc, ("wsgid.", "importlib", "paste.deploy."))
        ) from None
    if not callable(app):
        raise AppLoadError(f"paste {spec!r}: {type(app).__name__} object is not callable")
    return app  # type: ignore[no-any-return]


def import_app(spec: str) -> WSGIApp:
    if spec.partition(":")[2]:
        app = import_object(spec)
    else:
        module_name = _module_name(spec)
        module = _import_module(spec, module_name)
        for default in ("application", "app"):
            if hasattr(module, default):
                app = getattr(module, default)
                break
        else:
            raise AppLoadError(
                f"app {spec!r}: module {module_name!r} has neither `application` nor `app`;"
                f" name the callable as '{module_name}:NAME'"
            )
    if not callable(app) and not is_tornado_app(app):
        raise AppLoadError(
            f"app {spec!r}: {type(app).__name__} object is not callable; "
            "a WSGI application is a callable taking (environ, start_response)"
        )
    return app  # type: ignore[no-any-return]


def import_object(spec: str) -> Any:
    """What `module:attr` (or `module:factory(...)`) names, callable or not: the app's
    import path for other things imported by name (the hooks), which say themselves what
    they need of it. AppLoadError, its message starting with `app SPEC:`, if it cannot."""
    module_name = _module_name(spec)
    attr_expr = spec.partition(":")[2]
    if not attr_expr:
        raise AppLoadError(f"app {spec!r}: expected 'module:name'")
    module = _import_module(spec, module_name)
    name, call = _parse_attr(spec, attr_expr.strip())
    obj = _resolve(spec, module, module_name, name)
    return obj if call is None else _call_factory(spec, obj, call)


def _module_name(spec: str) -> str:
    module_name = spec.partition(":")[0].strip()
    if not module_name:
        raise AppLoadError(f"app {spec!r}: expected 'module:callable'")
    return module_name


def _import_module(spec: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise AppLoadError(
                f"app {spec!r}: no module named {module_name!r} (sys.path[0] is {sys.path[0]!r};"
                " use --chdir or --pythonpath to add the project's directory)"
            ) from None
        raise AppLoadError(
            f"app {spec!r}: module {module_name!r} was found, but importing it failed:\n"
            + _format_tail(exc)
        ) from None
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise  # not an error raised by the import: load_app says what it means
        raise AppLoadError(
            f"app {spec!r}: importing module {module_name!r} raised an error:\n" + _format_tail(exc)
        ) from None


def _format_tail(exc: BaseException, skipped: tuple[str, ...] = ("wsgid.", "importlib")) -> str:
    """The traceback from the user's code, without the first frames of the `skipped` modules
    (wsgid's own, by default)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith(skipped):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(line for line in lines if "<frozen importlib" not in line).rstrip()


def _parse_attr(spec: str, expr: str) -> tuple[str, ast.Call | None]:
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"app {spec!r}: {expr!r} is not an attribute name or call") from None
    call = None
    if isinstance(node, ast.Call):
        call, node = node, node.func
    dotted = _dotted(node)
    if dotted is None:
        raise AppLoadError(f"app {spec!r}: {expr!r} is not an attribute name or call")
    return dotted, call


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _resolve(spec: str, module: Any, module_name: str, dotted: str) -> Any:
    obj = module
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"app {spec!r}: module {module_name!r} has no attribute {dotted!r}"
            ) from None
    return obj


def _call_factory(spec: str, factory: Any, call: ast.Call) -> Any:
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError:
        raise AppLoadError(
            f"app {spec!r}: factory arguments must be literals (strings, numbers, ...)"
        ) from None
    if not callable(factory):
        raise AppLoadError(f"app {spec!r}: {type(factory).__name__} object is not callable")
    try:
        return factory(*args, **kwargs)
    except Exception as exc:
        raise AppLoadError(
            f"app {spec!r}: the application factory raised an error:\n" + _format_tail(exc)
        ) from None
