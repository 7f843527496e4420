"""Timestamps as wsgid spells them, each format computed at most once a second.

Owns: the time formats of every log line: ISO 8601 UTC for structured lines,
the Common Log Format date of `combined` and gunicorn's `%(t)s`, and the two
syslog headers (RFC 5424 and the local RFC 3164 convention); and the HTTP
date of the `Date` response header (RFC 9110 §5.6.7), which the worker hands
to `http/date.py` (that caches it itself). Day and month names come from tables, never from the C
locale an application may have changed.

The access log formats a time for every request, and `strftime` costs more
than the rest of a combined line; the part that changes once a second is
cached per format (a tuple swap, safe across threads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # tm_wday: Monday is 0


class _Spelled:
    """The last time spelled in one format, as (the time's key, its text): one attribute,
    swapped whole, so a thread never reads one time's key with another's text. An attribute
    of a compiled object, where a module global would cost dictionary lookups."""

    def __init__(self) -> None:
        self.last: tuple[int, str] = (-1, "")


_iso_second: Final = _Spelled()
_iso_ms: Final = _Spelled()


def iso_utc(now: float) -> str:
    """`2026-11-27T07:53:11.123Z`: UTC with milliseconds."""
    ms = int(now * 1000)
    last = _iso_ms.last
    if last[0] == ms:
        return last[1]  # under load, dozens of requests end in the same ms
    second, frac = divmod(ms, 1000)
    prefix = _iso_second.last
    if prefix[0] != second:
        prefix = _iso_second.last = (
            second,
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
        )
    # str(1000 + frac)[1:] is frac in three digits; a format spec would cost a str.format call.
    text = f"{prefix[1]}.{str(1000 + frac)[1:]}Z"
    _iso_ms.last = (ms, text)
    return text


def rfc5424(now: float) -> str:
    """`2026-11-27T07:53:11.123456Z`: RFC 5424 §6.2.3 TIMESTAMP, UTC, microseconds."""
    second = int(now)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


class _LocalPerSecond:
    """A spelling of the local time to the second, computed once a second.

    The cache is one (second, text) tuple, swapped whole: safe across threads.
    """

    def __init__(self, spell: Callable[[time.struct_time], str]) -> None:
        self._spell = spell
        self._cache: tuple[int, str] = (-1, "")

    def at(self, now: float) -> str:
        second = int(now)
        cache = self._cache
        if cache[0] != second:
            cache = self._cache = (second, self._spell(time.localtime(second)))
        return cache[1]


def _clf(tm: time.struct_time) -> str:
    offset = tm.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (
        f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year:04d}:"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


def _rfc3164(tm: time.struct_time) -> str:
    return (
        f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    )


# `27/Nov/2026:07:53:11 +0000`: Apache's %t (without brackets), local time.
clf_local = _LocalPerSecond(_clf).at
# `Nov 27 07:53:11`: the timestamp syslog(3) writes to the local socket.
rfc3164_local = _LocalPerSecond(_rfc3164).at


def http_date(second: int) -> str:
    """`Fri, 27 Nov 2026 07:53:11 GMT`: RFC 9110 §5.6.7 IMF-fixdate.

    Not email.utils.formatdate: importing it costs every process about 1 MiB.
    """
    tm = time.gmtime(second)
    return (
        f"{WEEKDAYS[tm.tm_wday]}, {tm.tm_mday:02d} {MONTHS[tm.tm_mon - 1]} {tm.tm_year:04d} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT"
    )
