"""Escaping of values in log lines: nothing a client sends can break a line or forge a field.

Owns: turning arbitrary text into something each format can carry safely.

- Request data (path, query, headers) reaches the logs as `str` holding one
  character per byte received (latin-1 decoding, lossless and free).
  `client_text` turns it into readable text for the structured formats: valid
  UTF-8 is decoded, any other byte becomes the four characters `\\xHH`.
- `clf` escapes for the Apache/nginx family of line formats (`combined` and
  gunicorn's atoms) exactly as nginx does: `"`, `\\`, control bytes and every
  byte >= 0x7F become `\\xHH`. A quoted field can then never contain a quote,
  and log analyzers that know nginx lines read every line.
- `logfmt` quotes a value when it must and escapes `\\`, `"` and every
  non-printable character (line breaks, ANSI escapes, bidi controls).
- `printable` escapes only non-printable characters, for messages to a
  terminal (configuration errors echo values from the environment).
- `key` keeps field names to a safe alphabet (they come from code, but also
  from stdlib `logging` extras an app chooses).

Each function has a fast path for the common case (short printable ASCII),
because the access log runs them several times per request.
"""

from __future__ import annotations

import re
from typing import Final

# nginx's escaping of logged variables: `"`, `\` and bytes outside 0x20..0x7E.
_CLF_TABLE: Final[dict[int, str]] = {
    c: f"\\x{c:02X}" for c in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0x100))
}

_QUOTED_TABLE: Final[dict[int, str]] = {
    c: f"\\u{c:04x}" for c in (*range(0x20), *range(0x7F, 0xA0))
}
_CONTROL_TABLE: Final = dict(_QUOTED_TABLE)
_CONTROL_TABLE.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
_QUOTED_TABLE.update(_CONTROL_TABLE)
_QUOTED_TABLE.update({0x5C: "\\\\", 0x22: '\\"'})

_KEY_BAD: Final = re.compile(r"[^A-Za-z0-9_.@/-]")


def client_text(raw: str) -> str:
    """Bytes-as-latin-1 text to readable text: UTF-8 decoded, other bytes as `\\xHH`."""
    if raw.isascii():
        return raw
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:
        return raw  # already real text (an app rewrote the environ value)
    return data.decode("utf-8", "backslashreplace")


def clf(text: str) -> str:
    """nginx-style escaping for a field of a combined/common log line."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    escaped = text.translate(_CLF_TABLE)
    if escaped.isascii():
        return escaped
    # Characters above U+00FF only come from text an app put in the environ:
    # log their UTF-8 bytes, escaped like any other byte.
    return "".join(
        ch if ch.isascii() else "".join(f"\\x{b:02X}" for b in ch.encode("utf-8", "replace"))
        for ch in escaped
    )


def _escaped(text: str, table: dict[int, str]) -> str:
    escaped = text.translate(table)
    if not escaped.isprintable():
        # Line/paragraph separators, bidi controls, unassigned code points...
        escaped = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in escaped)
    return escaped


def quoted(text: str) -> str:
    """`text` in double quotes with `\\`, `"` and non-printable characters escaped."""
    return f'"{_escaped(text, _QUOTED_TABLE)}"'


def printable(text: str) -> str:
    """`text` with its non-printable characters escaped (`\\n`, `\\u001b`), nothing else.

    For a message printed to a terminal that quotes values from the
    environment or a file: an ESC or BEL there must not reach the terminal.
    """
    if text.isprintable():
        return text
    return _escaped(text, _CONTROL_TABLE)


def logfmt(text: str) -> str:
    """A logfmt value: bare when it is safe, else quoted and escaped."""
    if (
        text
        and text.isprintable()
        and " " not in text
        and "=" not in text
        and '"' not in text
        and "\\" not in text
    ):
        return text
    return quoted(text)


def key(name: str) -> str:
    """A field name restricted to `[A-Za-z0-9_.@/-]` (others become `_`)."""
    if name and not _KEY_BAD.search(name):
        return name
    return _KEY_BAD.sub("_", name) or "_"
