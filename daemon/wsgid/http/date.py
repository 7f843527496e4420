"""The end of every response head wsgid sends: `Date`, `Server` and the blank line.

Owns: the `Date` header (RFC 9110 §6.6.1: an origin server with a clock sends
it on every 2xx, 3xx and 4xx response; wsgid sends it on 5xx too), formatted
at most once a second and shared by the application's responses
(`response.py`) and wsgid's own (`errors.py`), so both always agree. How a
second is spelt (RFC 9110 §5.6.7, IMF-fixdate) is handed in by the worker
with the formatter of its clock (`wsgid.logs.clock.http_date`), which owns
every time format wsgid writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

SERVER_HEADER: Final = b"Server: wsgid\r\n"
_HEAD_END: Final = SERVER_HEADER + b"\r\n"

# Which of Date and Server the application's response set itself (bits; END_OWN: neither).
# Its own win: one of each is sent (RFC 9110 §6.6.1: Date is one value).
END_OWN: Final = 0
END_APP_DATE: Final = 1
END_APP_SERVER: Final = 2

_time: Final = time.time


class Dates:
    """`Date: <now>\\r\\nServer: wsgid\\r\\n\\r\\n`, formatted again once a second.

    One per worker, shared by its threads: a thread that finds the second
    over formats it again (the same bytes as any other would), and the end
    (`_tail`) is always stored before the second it is valid until.
    """

    def __init__(self, http_date: Callable[[int], str]) -> None:
        self._format = http_date  # a second since the epoch -> IMF-fixdate
        self._tail = b""
        self._expires = 0.0

    def head_end(self) -> bytes:
        """The end of a head sent now."""
        now = _time()
        if now >= self._expires:
            second = int(now)
            self._tail = b"Date: " + self._format(second).encode("ascii") + b"\r\n" + _HEAD_END
            self._expires = second + 1.0
        return self._tail

    def head_end_without(self, app_set: int) -> bytes:
        """The end of a head sent now whose Date, Server or both (`app_set`, END_APP_* bits)
        the application gave."""
        date = b"" if app_set & END_APP_DATE else self.head_end()[: -len(_HEAD_END)]
        server = b"" if app_set & END_APP_SERVER else SERVER_HEADER
        return date + server + b"\r\n"
