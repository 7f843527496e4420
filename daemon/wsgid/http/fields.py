"""What a request header field name means to wsgid, looked up once per name.

Owns: mapping a field name as sent to
- its environ key (PEP 3333 / CGI: `HTTP_` + the name upper-cased with `-`
  as `_`; `CONTENT_TYPE` and `CONTENT_LENGTH` without the prefix), or "" for
  a name left out of the environ, and
- its role for the request rules in `policy.py` (Host, Content-Length,
  Transfer-Encoding, Content-Type, Expect), or None.

The parser consults this for every field of every request, so the answers
are cached by the name's exact bytes: one dict lookup per field.

Names containing "_" are left out of the environ: "X_Forwarded_For" and
"X-Forwarded-For" would both become HTTP_X_FORWARDED_FOR, letting a client
forge a header a proxy vouches for. `header_map = "dangerous"` maps them
anyway (gunicorn's opt-in); their role stays None whatever they look like,
since llhttp frames the body by the real names only.
"""

from __future__ import annotations

HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONTENT_TYPE, EXPECT = range(5)
_ROLES = {
    b"host": HOST,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"content-type": CONTENT_TYPE,
    b"expect": EXPECT,
}
_UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}

Entry = tuple[str, "int | None"]
# Name bytes as sent -> (environ key, role). Bounded, so that a client sending
# endless distinct names cannot grow it forever: past the bound, new names
# are answered without being remembered.
CACHE: dict[bytes, Entry] = {}
_CACHE_MAX = 4096
_underscores_mapped = False


def map_underscores(enabled: bool) -> None:
    """header_map = "dangerous": map `_` names onto HTTP_* like `-` ones."""
    global _underscores_mapped
    _underscores_mapped = enabled
    CACHE.clear()


def entry(name: bytes) -> Entry:
    """(environ key or "", policy role or None) for a field name; cached."""
    found = CACHE.get(name)
    if found is not None:
        return found
    if b"_" in name:
        found = (_environ_key(name) if _underscores_mapped else "", None)
    else:
        found = (_environ_key(name), _ROLES.get(name.lower()))
    if len(CACHE) < _CACHE_MAX:
        CACHE[name] = found
    return found


def _environ_key(name: bytes) -> str:
    # Field names are tokens (llhttp refuses anything else), so ASCII.
    upper = name.decode("latin-1").upper().replace("-", "_")
    return upper if upper in _UNPREFIXED else "HTTP_" + upper
