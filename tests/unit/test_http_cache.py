"""The bounded memo tables of http/ (cache.py)."""

from __future__ import annotations

from wsgid.http.cache import remember


def test_a_table_is_emptied_when_full_and_keeps_what_comes_next() -> None:
    table: dict[int, str] = {}
    for i in range(3):
        assert remember(table, i, str(i), 3) == str(i)
    assert table == {0: "0", 1: "1", 2: "2"}
    assert remember(table, 3, "3", 3) == "3"
    assert table == {3: "3"}  # never past the bound, and the newest is there
