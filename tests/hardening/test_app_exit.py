"""An application's `sys.exit()` inside a request is its request failing, nothing more.

SystemExit is no `Exception`: a server that catches only those lets it end the request
without an answer, or the worker with it. Under wsgid, as under gunicorn, it is a 500 with the
traceback in the error log, and the worker keeps serving, on every worker kind. (The worker's
own exit on INT/QUIT, raised wherever the app is, still goes through: test_lifecycle_signals.)
"""

from __future__ import annotations

from collections.abc import Callable

from support.kinds import kind_args
from support.server import WsgidServer


def test_sys_exit_in_the_app_is_a_500_and_the_worker_keeps_serving(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid("misbehaving_app:app", *kind_args(kind), workers=1)
    conn = server.connection()
    try:
        for _ in range(2):  # the same worker, twice: it did not exit the first time
            conn.request("GET", "/exit")
            response = conn.getresponse()
            assert response.status == 500, (response.status, response.read())
            response.read()
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
    finally:
        conn.close()
    errlog = server.wait_log("SystemExit: 3")
    assert errlog.count("app.error") == 2, errlog
    for ended in ("worker.exited", "worker.thread_error", "worker.greenlet_error"):
        assert ended not in errlog, errlog
    assert server.stop() == 0
