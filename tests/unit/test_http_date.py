"""The Date header's format (RFC 9110 §5.6.7 IMF-fixdate), without email.utils."""

from __future__ import annotations

from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from wsgid.logs.clock import http_date


@given(st.integers(min_value=0, max_value=253402300799))  # up to 9999-12-31T23:59:59Z
def test_http_date_spells_what_email_utils_spells(second: int) -> None:
    assert http_date(second) == formatdate(second, usegmt=True)


def test_http_date_of_a_known_instant() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example
