"""The Date header: its format (RFC 9110 §5.6.7 IMF-fixdate), formatted once a second."""

from __future__ import annotations

from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from wsgid.http.date import Dates
from wsgid.logs.clock import http_date


@given(st.integers(min_value=0, max_value=253402300799))  # up to 9999-12-31T23:59:59Z
def test_http_date_spells_what_email_utils_spells(second: int) -> None:
    assert http_date(second) == formatdate(second, usegmt=True)


def test_http_date_of_a_known_instant() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example


def test_a_head_ends_with_the_date_the_handed_in_formatter_spells_once_a_second() -> None:
    seconds: list[int] = []

    def spell(second: int) -> str:
        seconds.append(second)
        return "Sun, 06 Nov 1994 08:49:37 GMT"

    dates = Dates(spell)
    end = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: wsgid\r\n\r\n"
    assert [dates.head_end() for _ in range(100)] == [end] * 100
    assert 1 <= len(seconds) <= 2  # again only when the second turned meanwhile
