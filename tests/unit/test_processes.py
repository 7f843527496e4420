"""`wsgid.processes.memory`: what the master reads of a worker's memory, from /proc."""

from __future__ import annotations

import os

from wsgid.processes import memory


def test_memory_follows_what_a_process_writes_in_rss_and_pss() -> None:
    pid = os.getpid()
    before = {metric: memory(pid, metric) for metric in ("rss", "pss")}
    block = b"\x5a" * (64 << 20)  # written, so resident
    after = {metric: memory(pid, metric) for metric in ("rss", "pss")}
    for metric in ("rss", "pss"):
        first, second = before[metric], after[metric]
        assert first is not None and second is not None, metric
        assert second - first >= 60 << 20, (metric, first, second)
    assert len(block) == 64 << 20


def test_memory_of_a_process_that_is_gone_is_none() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert memory(pid, "rss") is None and memory(pid, "pss") is None
