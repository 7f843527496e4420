"""The PEP 3333 environ for one request.

Owns: turning a parsed `Request` plus what is known about its connection
(its peer, or the client its PROXY header names) into the dict the
application receives. Connection-constant keys (server and peer
address, wsgi.* flags) are built once per connection; each request copies that
base and adds only what the request changes, because this is the hot path;
the keys a request line gives (method, PATH_INFO, QUERY_STRING, protocol,
RAW_URI) are remembered per request line, since most requests repeat a few.

Decisions:
- PATH_INFO is the percent-decoded path as latin-1 text (PEP 3333 "native
  strings"), with SCRIPT_NAME (from the process environment, as gunicorn
  does) removed from its front when the path is that or below it; a path
  outside it gets SCRIPT_NAME "" (the app is not mounted there, and PATH_INFO
  always begins with "/"); RAW_URI keeps the target exactly as sent.
- On a UNIX socket, which has no address to name, SERVER_NAME and SERVER_PORT
  come from Host, as in gunicorn (the port from the scheme when Host has none):
  PEP 3333 lets SERVER_PORT never be empty, and frameworks build URLs of them.
- What a trusted proxy said of the request (`Request.overrides`: scheme, client
  address, SCRIPT_NAME, ...) is applied last; when it replaces REMOTE_ADDR, the TCP
  peer stays in `wsgid.peer_addr` and `wsgid.peer_port`.
- The header fields arrive already keyed (`fields.py`: names with "_" left
  out) and joined (repeated fields with ", ", RFC 9110 §5.3; Cookie with
  "; ", RFC 6265 §5.4) by the parser, which builds them as it reads them.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Final

from wsgid.http.cache import remember
from wsgid.http.proxy_protocol import ProxyInfo
from wsgid.http.request import Request


def connection_base(
    *,
    server: tuple[str, str],
    peer: tuple[str, str],
    url_scheme: str,
    multithread: bool,
    multiprocess: bool = True,
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
        # A CGI variable (RFC 3875 §4.1.17) gunicorn sets too; the name alone, as in `Server`.
        "SERVER_SOFTWARE": "wsgid",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": errors if errors is not None else sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # wsgi.input ends where the body ends, chunked or not; Werkzeug
        # (Flask) reads a body without Content-Length only when told so.
        "wsgi.input_terminated": True,
    }
    if file_wrapper is not None:
        base["wsgi.file_wrapper"] = file_wrapper
    return base


def proxied(base: dict[str, Any], info: ProxyInfo) -> dict[str, Any]:
    """The connection base once its PROXY header said `info` (`proxy_protocol.py`).

    The client's address replaces the TCP peer's, which stays in `wsgid.peer_addr` and
    `wsgid.peer_port`; a header that names no client (v1 UNKNOWN, v2 LOCAL, UNSPEC, or
    a UNIX socket) keeps the peer, as the protocol asks.
    """
    base = base.copy()
    base["wsgid.proxy_protocol"] = info.version
    if info.client is not None:
        base["wsgid.peer_addr"] = base["REMOTE_ADDR"]
        base["wsgid.peer_port"] = base["REMOTE_PORT"]
        base["REMOTE_ADDR"], port = info.client
        base["REMOTE_PORT"] = str(port)
    if info.tls:
        base["wsgi.url_scheme"] = "https"
    if info.tlvs:
        base["wsgid.proxy_tlvs"] = dict(info.tlvs)
    return base


def _script_name() -> str:
    return os.environ.get("SCRIPT_NAME", "").rstrip("/")


def build(base: dict[str, Any], req: Request, wsgi_input: object) -> dict[str, Any]:
    """A fresh environ for `req` on a connection whose constant keys are `base`."""
    env = base.copy()
    script_name = base["SCRIPT_NAME"]
    key = (req.target, req.method, req.version, script_name)
    line = _LINES.get(key)
    if line is None:
        line = _request_line(req, script_name)
        if len(req.target) <= _LINE_TARGET_MAX:
            remember(_LINES, key, line, _LINES_MAX)
    env.update(line)
    env["wsgi.input"] = wsgi_input
    env.update(req.environ)  # the fields, keyed and joined by the parser (fields.py)
    if req.authority:
        env["HTTP_HOST"] = req.authority.decode("latin-1")  # RFC 9112 §3.2.2
    if req.overrides is not None:
        _override(env, req.overrides)
    if not env["SERVER_PORT"]:  # a UNIX socket's (listeners.Listener.server)
        _server_from_host(env)
    return env


def _server_from_host(env: dict[str, Any]) -> None:
    host = env.get("HTTP_HOST", "")
    if host.startswith("["):
        end = host.find("]") + 1
        name, port = host[:end], host[end + 1 :]
    else:
        name, _, port = host.partition(":")
    if name:
        env["SERVER_NAME"] = name
    env["SERVER_PORT"] = port or ("443" if env["wsgi.url_scheme"] == "https" else "80")


def _override(env: dict[str, Any], overrides: dict[str, str]) -> None:
    """Apply what a trusted proxy said (`forwarded.py`), keeping the TCP peer if replaced."""
    if "REMOTE_ADDR" in overrides and "wsgid.peer_addr" not in env:
        env["wsgid.peer_addr"] = env["REMOTE_ADDR"]
        env["wsgid.peer_port"] = env["REMOTE_PORT"]
    env.update(overrides)


def decoded_path(path: bytes) -> str:
    """A request path as PATH_INFO shows it: percent-decoded, as latin-1 text."""
    if b"%" not in path:
        return path.decode("latin-1")
    return unquote(path).decode("latin-1")


# Each %XX of any case, by its two hex digits. A module of wsgid's own, not urllib.parse's
# unquote_to_bytes: importing urllib.parse is 1 ms of every worker's boot, and a worker may
# not import later what it needs (after it dropped privileges, Python's own files may be
# out of its reach).
_HEX_DIGITS: Final = "0123456789abcdefABCDEF"
_ESCAPED: Final = {
    (a + b).encode(): bytes((int(a + b, 16),)) for a in _HEX_DIGITS for b in _HEX_DIGITS
}


def unquote(path: bytes) -> bytes:
    """`path` percent-decoded (RFC 3986 §2.1); a `%` not followed by two hex digits stays."""
    parts = path.split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        byte = _ESCAPED.get(part[:2])
        out.append(b"%" + part if byte is None else byte + part[2:])
    return b"".join(out)


# The keys a request line gives, by (target, method, version, SCRIPT_NAME):
# most requests repeat a few request lines. Only short targets are kept, in a
# bounded table (cache.py).
_LINES: Final[dict[tuple[bytes, str, str, str], dict[str, str]]] = {}
_LINES_MAX: Final = 512
_LINE_TARGET_MAX: Final = 256


def _request_line(req: Request, script_name: str) -> dict[str, str]:
    path_info = decoded_path(req.path)
    line = {
        "REQUEST_METHOD": req.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": req.query.decode("latin-1"),
        "SERVER_PROTOCOL": req.version,
        "RAW_URI": req.target.decode("latin-1"),
    }
    if script_name:
        if path_info == script_name or path_info.startswith(script_name + "/"):
            line["PATH_INFO"] = path_info[len(script_name) :]
        else:
            line["SCRIPT_NAME"] = ""
    return line
