"""The PEP 3333 environ for one request.

Owns: turning a parsed `Request` plus what is known about its connection into
the dict the application receives. Connection-constant keys (server and peer
address, wsgi.* flags) are built once per connection; each request copies that
base and adds only what the request changes, because this is the hot path.

Decisions:
- PATH_INFO is the percent-decoded path as latin-1 text (PEP 3333 "native
  strings"), with SCRIPT_NAME (from the process environment, as gunicorn
  does) removed from its front; RAW_URI keeps the target exactly as sent.
- Repeated fields are joined with ", " (RFC 9110 §5.3), Cookie with "; "
  (RFC 6265 §5.4).
- Names containing "_" are left out: "X_Forwarded_For" and
  "X-Forwarded-For" would both become HTTP_X_FORWARDED_FOR, letting a client
  forge a header a proxy vouches for.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from wsgid.http.parser import Request

# Header name bytes as sent -> environ key, or "" for names left out. Bounded
# so that a client sending endless distinct names cannot grow it forever.
_KEY_CACHE: dict[bytes, str] = {}
_KEY_CACHE_MAX = 4096
_SPECIAL_KEYS = {"CONTENT_TYPE": "CONTENT_TYPE", "CONTENT_LENGTH": "CONTENT_LENGTH"}


_underscores_mapped = False


def map_underscores(enabled: bool) -> None:
    """header_map = "dangerous": map `_` names onto HTTP_* like `-` ones (gunicorn's opt-in)."""
    global _underscores_mapped
    _underscores_mapped = enabled
    _KEY_CACHE.clear()


def _environ_key(name: bytes) -> str:
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    if b"_" in name and not _underscores_mapped:
        key = ""
    else:
        upper = name.decode("latin-1").upper().replace("-", "_")
        key = _SPECIAL_KEYS.get(upper) or "HTTP_" + upper
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


def connection_base(
    *,
    server: tuple[str, str],
    peer: tuple[str, str],
    url_scheme: str,
    multithread: bool,
    errors: IO[str] | None = None,
    file_wrapper: Any = None,
) -> dict[str, Any]:
    """The keys every request on one connection shares."""
    base: dict[str, Any] = {
        "SCRIPT_NAME": _script_name(),
        "SERVER_NAME": server[0],
        "SERVER_PORT": server[1],
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": peer[1],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": errors if errors is not None else sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # wsgi.input ends where the body ends, chunked or not; Werkzeug
        # (Flask) reads a body without Content-Length only when told so.
        "wsgi.input_terminated": True,
    }
    if file_wrapper is not None:
        base["wsgi.file_wrapper"] = file_wrapper
    return base


def _script_name() -> str:
    return os.environ.get("SCRIPT_NAME", "").rstrip("/")


def build(base: dict[str, Any], req: Request, wsgi_input: object) -> dict[str, Any]:
    """A fresh environ for `req` on a connection whose constant keys are `base`."""
    env = base.copy()
    path = req.path
    path_info = unquote_to_bytes(path).decode("latin-1") if b"%" in path else path.decode("latin-1")
    script_name = base["SCRIPT_NAME"]
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    env["REQUEST_METHOD"] = req.method
    env["PATH_INFO"] = path_info
    env["QUERY_STRING"] = req.query.decode("latin-1")
    env["SERVER_PROTOCOL"] = req.version
    env["RAW_URI"] = req.target.decode("latin-1")
    env["wsgi.input"] = wsgi_input
    cached = _KEY_CACHE.get
    for name, value in req.headers:
        key = cached(name)
        if key is None:
            key = _environ_key(name)
        if not key:
            continue
        if key in env:  # a repeated field (policy refuses repeated CONTENT_*)
            sep = "; " if key == "HTTP_COOKIE" else ", "
            env[key] = env[key] + sep + value.decode("latin-1")
        else:
            env[key] = value.decode("latin-1")
    if req.authority:
        env["HTTP_HOST"] = req.authority.decode("latin-1")  # RFC 9112 §3.2.2
    return env
