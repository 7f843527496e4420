"""The master serves when its descriptors are numbered past 1024.

A preloaded app that holds many files (connection pools, a model's files) pushes the master's
own descriptors (its wake-up pipe, the boot pipe, the side listener) past select(2)'s
FD_SETSIZE: select raised ValueError at the master's first loop turn, and the server died
where gunicorn serves. The master waits with poll(2), which takes any number.
"""

from __future__ import annotations

import resource
from collections.abc import Callable

import pytest

from support.server import WsgidServer


def test_master_with_a_preloaded_app_holding_1100_descriptors_serves_and_stops(
    wsgid: Callable[..., WsgidServer],
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: no room for the app's 1,100 files")
    server = wsgid("many_fds_app:app", "--preload", "--metrics-bind", "127.0.0.1:0", workers=2)
    answer = server.get("/")
    assert answer.status == 200, server.errlog()
    assert int(answer.body.split()[-1]) >= 1024  # the app's files alone pass FD_SETSIZE
    server.wait_workers(2)
    assert server.get("/").status == 200
    assert "ValueError" not in server.errlog()
    assert server.stop() == 0, server.errlog()
