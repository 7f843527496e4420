"""gunicorn's `access_log_format` atoms (`%(h)s %(r)s ...`), rendered safely.

Owns: compiling a gunicorn-style format once and rendering an access event
with it. The atoms mean what they mean in gunicorn (same names, same values,
`-` for anything missing), so a gunicorn user keeps their format; the
difference is that every string atom is escaped nginx-style (`escape.clf`),
where gunicorn only escapes `"`, so a header can neither break the line nor
end a quoted field.

| atom          | value                                          |
| ------------- | ---------------------------------------------- |
| `h`           | remote address                                 |
| `l`           | `-`                                            |
| `u`           | user name (REMOTE_USER, or HTTP Basic user)    |
| `t`           | date, `[27/Nov/2026:07:53:11 +0000]`           |
| `r`           | request line, `GET /path?q HTTP/1.1`           |
| `m` `U` `q` `H` | method, URL path, query string, protocol     |
| `s`           | status                                         |
| `B` / `b`     | response body bytes / the same, `-` if unknown |
| `f` / `a`     | referer / user agent                           |
| `T` `M` `D` `L` | duration: s, ms, µs, decimal seconds         |
| `p`           | `<pid>`                                        |
| `{name}i` / `{name}o` / `{name}e` | request header / response header / environ variable |

wsgid adds `{request_id}` style conveniences through the environ:
`%({wsgid.request_id}e)s` is the request id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from wsgid.logs import escape
from wsgid.logs.clock import clf_local

_NAME = re.compile(r"%\(([^)]*)\)")
_BRACED = re.compile(r"\{[^{}]+\}[ioe]")  # {header}i, {header}o, {variable}e

Getter = Callable[[MutableMapping[str, Any]], Any]


def _s(value: Any) -> Any:
    """Escape string values; other types pass (so `%(D)d` keeps working)."""
    return escape.clf(value) if type(value) is str else value


def _dash(value: Any) -> Any:
    return "-" if value is None or value == "" else _s(value)


def _environ(event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    env: Mapping[str, Any] = event.get("_environ") or {}
    return env


def _request_line(event: MutableMapping[str, Any]) -> str:
    if not event["method"]:
        return "-"  # refused before the request line was understood
    env = _environ(event)
    target = env.get("RAW_URI") or request_target(event)
    return escape.clf(f"{event['method']} {target} {event['protocol']}")


def request_target(event: MutableMapping[str, Any]) -> str:
    query = event["query"]
    return f"{event['path']}?{query}" if query else str(event["path"])


def _duration(event: MutableMapping[str, Any]) -> int:
    return int(event["duration_us"])


_ATOMS: dict[str, Getter] = {
    "h": lambda e: _dash(e["remote_addr"]),
    "l": lambda e: "-",
    "u": lambda e: _dash(e.get("remote_user")),
    "t": lambda e: f"[{clf_local(e['timestamp'])}]",
    "r": _request_line,
    "m": lambda e: _dash(e["method"]),
    "U": lambda e: _dash(_environ(e).get("PATH_INFO", e["path"])),
    "q": lambda e: "-" if e["query"] is None else _s(e["query"]),  # None: refused unparsed
    "H": lambda e: _dash(e["protocol"]),
    "s": lambda e: str(e["status"]),
    "B": lambda e: e["bytes_sent"],
    "b": lambda e: str(e["bytes_sent"]) if e["bytes_sent"] is not None else "-",
    "f": lambda e: _dash(e["referer"]),
    "a": lambda e: _dash(e["user_agent"]),
    "T": lambda e: _duration(e) // 1_000_000,
    "M": lambda e: _duration(e) // 1000,
    "D": _duration,
    "L": lambda e: "{}.{:06d}".format(*divmod(_duration(e), 1_000_000)),
    "p": lambda e: f"<{e['pid']}>",
}


def _header_getter(name: str, kind: str) -> Getter:
    lname = name.lower()
    if kind == "i":
        key = "HTTP_" + lname.upper().replace("-", "_")
        if lname in ("content-type", "content-length"):
            key = key[5:]
        return lambda e: _dash(_environ(e).get(key))

    if kind == "o":

        def response_header(e: MutableMapping[str, Any]) -> Any:
            for header, value in e.get("_headers") or ():
                if header.lower() == lname:
                    return _dash(value)
            return "-"

        return response_header

    def environ_variable(e: MutableMapping[str, Any]) -> Any:
        env = _environ(e)
        value = env.get(name, env.get(name.upper(), env.get(lname)))
        return _dash(value if value is None or isinstance(value, (str, int, float)) else str(value))

    return environ_variable


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


# The atoms whose values are numbers; every other one is a string (`-` when missing).
_NUMBERS = frozenset("BTMD")


class _Samples(dict[str, Any]):
    """A value of the right type for every atom: `%(D)d` passes the check, `%(h)d` fails it
    here rather than at every request."""

    def __missing__(self, key: str) -> Any:
        return 0 if key in _NUMBERS else "-"


class AtomFormat:
    """A compiled gunicorn access-log format."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.getters: dict[str, Getter] = {}
        for name in dict.fromkeys(_NAME.findall(fmt)):
            getter = _ATOMS.get(name)
            if getter is None and _BRACED.fullmatch(name):
                getter = _header_getter(name[1:-2], name[-1])
            if getter is not None:
                self.getters[name] = getter

    def render(self, event: MutableMapping[str, Any]) -> str:
        values = _Missing({name: get(event) for name, get in self.getters.items()})
        try:
            return self.fmt % values
        except (TypeError, ValueError) as exc:
            return f"wsgid: access_log_format cannot render this request: {exc}"


def check(fmt: str) -> None:
    """Raise ValueError if `fmt` is not a usable %-format over named atoms."""
    try:
        fmt % _Samples()
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"not a valid access log format ({exc})") from None
