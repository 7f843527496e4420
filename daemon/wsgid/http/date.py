"""The end of every response head wsgid sends: `Date`, `Server` and the blank line.

Owns: the `Date` header (RFC 9110 §6.6.1: an origin server with a clock sends
it on every 2xx, 3xx and 4xx response; wsgid sends it on 5xx too), formatted
at most once a second and shared by the application's responses
(`response.py`) and wsgid's own (`errors.py`), so both always agree.
"""

from __future__ import annotations

import time

from wsgid.logs.clock import http_date

SERVER_HEADER = b"Server: wsgid\r\n"
_HEAD_END = SERVER_HEADER + b"\r\n"

_time = time.time
# `Date: ...\r\n`, `Server` and the blank line, and when they must be formatted again.
_tail = b""
_expires = 0.0


def head_end() -> bytes:
    """`Date: <now>\\r\\nServer: wsgid\\r\\n\\r\\n`, formatted again once a second."""
    global _tail, _expires
    now = _time()
    if now >= _expires:
        second = int(now)
        # Not email.utils.formatdate: importing it costs every process about 1 MiB.
        _tail = b"Date: " + http_date(second).encode("ascii") + b"\r\n" + _HEAD_END
        _expires = second + 1
    return _tail
