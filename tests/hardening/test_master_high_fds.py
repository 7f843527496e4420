"""The master serves when its descriptors are numbered past 1024.

A preloaded app that holds many files (connection pools, a model's files) pushes the master's
own descriptors (its wake-up pipe, the boot pipe, the side listener) past select(2)'s
FD_SETSIZE: select raised ValueError at the master's first loop turn, and the server died
where gunicorn serves; on HUP, the pipe the settings come back through was refused the same
way, and every reload failed. The master waits with poll(2), which takes any number.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable

import pytest

from support.client import poll
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


def test_master_with_a_preloaded_app_holding_1100_descriptors_reloads_on_hup(
    wsgid: Callable[..., WsgidServer],
) -> None:
    # On HUP the settings are read again in a child, whose answer comes back over a pipe
    # numbered past 1024 here: waiting for it with select(2) failed every reload.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: no room for the app's 1,100 files")
    server = wsgid("many_fds_app:app", "--preload", workers=1)
    (old,) = server.wait_workers(1)
    server.send_signal(signal.SIGHUP)
    poll(
        lambda: server.worker_pids() not in ([], [old]) and len(server.worker_pids()) == 1,
        timeout=20,
        what="the reloaded worker to replace the old one",
    )
    assert server.get("/").status == 200
    log = server.errlog()
    assert "reload.failed" not in log, log
    assert server.stop() == 0, log
