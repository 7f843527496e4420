"""A request's header field section, turned into environ keys and values.

Owns:
- mapping a field name as sent to its environ key (PEP 3333 / CGI: `HTTP_` +
  the name upper-cased with `-` as `_`; `CONTENT_TYPE` and `CONTENT_LENGTH`
  without the prefix), or "" for a name left out of the environ;
- turning the field lines of a head (already validated by llhttp) into the
  environ's fields, repeated fields joined (RFC 9110 §5.3; Cookie with "; ",
  RFC 6265 §5.4), and into what `policy.py` judges: the values of the fields
  that frame the request (Host, Content-Length, Transfer-Encoding,
  Content-Type, Expect) and which of them were repeated.

This runs for every field of every request, so it is built around two caches:
- field lines as sent -> (environ key, value): most lines repeat verbatim
  from request to request (User-Agent, Accept, Accept-Language, Host, a
  session's Cookie, ...), so the usual head becomes its environ fields with
  one C-level pass (`dict(map(...))`) and no Python per field. Only lines up
  to `_LINE_MAX` (256) bytes are kept, at most `_LINES_MAX` (2048) of them,
  under 2 MiB; the cache empties when full (`cache.py`), so a client sending
  endless distinct lines costs time, not memory.
- field names -> (environ key, frames the request): for lines not cached;
  at most `_CACHE_MAX` (4096) names of up to `_NAME_MAX` (64) bytes, emptied
  when full too. A longer name is mapped each time: a client sending distinct
  8 KB names would otherwise have them held 4096 times over (64 MiB a worker).

Names containing "_" are left out of the environ: "X_Forwarded_For" and
"X-Forwarded-For" would both become HTTP_X_FORWARDED_FOR, letting a client
forge a header a proxy vouches for. `header_map = "dangerous"` maps them
anyway (gunicorn's opt-in), but never lets them frame the request, since
llhttp frames the body by the real names only, and never onto a `protected`
key (the forwarded headers, `forwarded.py`). The forwarder headers a proxy
sends under underscore names (SCRIPT_NAME, PATH_INFO, REMOTE_USER, as far as
`forwarder_headers` names them) are set aside for `forwarded.py`, which
believes them from a trusted proxy only; `header_map = "refuse"` lets them
pass, as gunicorn does. What to do comes with each head (the parser's
`Limits`), so nothing here depends on which settings were made. Heads with
such names, or with repeated fields, take the field-by-field path.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from types import MappingProxyType
from typing import Final, Literal

from wsgid.http.abnf import OWS_BYTES
from wsgid.http.cache import remember
from wsgid.http.errors import BadRequest

# The environ keys of the fields the request rules in policy.py look at.
HOST: Final = "HTTP_HOST"
CONTENT_LENGTH: Final = "CONTENT_LENGTH"
TRANSFER_ENCODING: Final = "HTTP_TRANSFER_ENCODING"
CONTENT_TYPE: Final = "CONTENT_TYPE"
EXPECT: Final = "HTTP_EXPECT"
_FRAMING: Final = frozenset((HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONTENT_TYPE, EXPECT))
_UNPREFIXED: Final = frozenset((CONTENT_TYPE, CONTENT_LENGTH))

# The `header_map` setting: what becomes of a name with "_" (see above).
HeaderMap = Literal["drop", "refuse", "dangerous"]

NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})
NOTHING_REPEATED: Final[Set[str]] = frozenset()

Entry = tuple[str, bool]
# (environ fields, framing fields by environ key, the framing keys repeated, the forwarder
# headers by name, or None when there are none)
Section = tuple[dict[str, str], Mapping[str, str], Set[str], dict[str, str] | None]
# Name bytes as sent -> (environ key, whether it frames the request); bounded.
CACHE: Final[dict[bytes, Entry]] = {}
_CACHE_MAX: Final = 4096
_NAME_MAX: Final = 64  # the longest registered field names are under 40 bytes
_LINE_MAX: Final = 256
_LINES_MAX: Final = 2048


class _Irregular(Exception):
    """A field line the one-pass path cannot take (a name with "_")."""


class _LineCache(dict[bytes, tuple[str, str]]):
    """Field line -> (environ key, value); a miss is parsed and usually kept."""

    def __missing__(self, line: bytes) -> tuple[str, str]:
        name, _, value = line.partition(b":")
        if b"_" in name:
            raise _Irregular
        pair = (entry(name)[0], value.strip(OWS_BYTES).decode("latin-1"))
        if len(line) <= _LINE_MAX:
            remember(self, line, pair, _LINES_MAX)
        return pair


LINES: Final = _LineCache()
_line: Final = LINES.__getitem__


def entry(name: bytes) -> Entry:
    """(environ key, whether it frames the request) for a field name; cached.

    A name with "_" has none here (""): what it gets depends on `header_map`.
    """
    found = CACHE.get(name)
    if found is not None:
        return found
    if b"_" in name:
        found = ("", False)
    else:
        key = _environ_key(name)
        found = (key, key in _FRAMING)
    if len(name) > _NAME_MAX:
        return found
    return remember(CACHE, name, found, _CACHE_MAX)


def _environ_key(name: bytes) -> str:
    # Field names are tokens (llhttp refuses anything else), so ASCII.
    upper = name.decode("latin-1").upper().replace("-", "_")
    return upper if upper in _UNPREFIXED else "HTTP_" + upper


def section(
    lines: list[bytes],
    header_map: HeaderMap,
    forwarder: Set[str] = frozenset(),
    protected: Set[str] = frozenset(),
) -> Section:
    """The environ fields, the framing fields, the repeated framing keys and the forwarder
    headers (`forwarder`: their names) of a head.

    `lines` are the head's field lines as sent (without CRLF), which llhttp
    has already found well-formed: `name ":" OWS value OWS`, no obs-fold.
    `protected`: environ keys a name with "_" never maps onto.
    """
    try:
        environ = dict(map(_line, lines))
    except _Irregular:
        return _field_by_field(lines, header_map, forwarder, protected)
    if len(environ) != len(lines):  # a field was repeated
        return _field_by_field(lines, header_map, forwarder, protected)
    # No "_" names and no repeats: the framing fields are the environ's own.
    return environ, environ, NOTHING_REPEATED, None


def _field_by_field(
    lines: list[bytes], header_map: HeaderMap, forwarder: Set[str], protected: Set[str]
) -> Section:
    environ: dict[str, str] = {}
    framing: dict[str, str] = {}
    repeated: set[str] = set()
    underscored: dict[str, str] | None = None
    for line in lines:
        name, _, raw_value = line.partition(b":")
        key, frames = entry(name)
        value = raw_value.strip(OWS_BYTES).decode("latin-1")  # RFC 9110 §5.5: OWS is not part of it
        if frames:
            if key in framing:
                repeated.add(key)
                framing[key] += ", " + value
            else:
                framing[key] = value
        if not key:  # only names with "_" have none
            upper = name.decode("latin-1").upper()
            if upper in forwarder:
                if underscored is None:
                    underscored = {}
                elif upper in underscored:
                    # Which one did the proxy send? Guessing would let a client choose.
                    raise BadRequest(f"repeated {upper} header")
                underscored[upper] = value
                continue
            if header_map == "drop":
                continue
            if header_map == "refuse":
                raise BadRequest("header name with an underscore (header_map = refuse)")
            key = _environ_key(name)  # "dangerous": mapped like a "-" name, never framing
            if key in protected:
                continue
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            environ[key] = value
    return environ, framing, repeated, underscored
