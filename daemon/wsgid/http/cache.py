"""Bounded memo tables: how http/ remembers what it worked out for a value seen before.

Owns: `remember`, the one rule every such table follows. Most requests repeat
a few field lines, targets, hosts and response heads, so parsing and checking
each one once pays; but the values come from clients and applications, so no
table may grow without bound. A table that holds `size` entries is emptied
before the next one goes in: a client sending endless distinct values costs
time, never memory, and the values that recur are back after a request or
two. (Python's randomized string and bytes hashing keeps a client from
flooding a table with colliding keys.)

A table is a plain dict, looked up by its owner with `get` or `in`: the hit,
which is the per-request path, costs one dict lookup and no call; only a miss
calls `remember`.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, size: int) -> V:
    """Put `value` in `table` under `key`, emptying it first if it holds `size` entries."""
    if len(table) >= size:
        table.clear()
    table[key] = value
    return value
