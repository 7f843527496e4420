"""gunicorn's remaining settings in real servers (issue 18: "spew", "The remaining settings").

- `spew`: with `--spew --log-level debug` the line of a one-line app appears in the error
  log, on every worker kind, written by a worker (never the master), after the master's
  warning; without the flag, or below debug level, no line is traced.
- `reuse_port`: two wsgid instances bind the same port and both serve; the second keeps
  serving when the first stops; without the flag the second cannot bind.
- `sendfile`: a `wsgi.file_wrapper` body goes through sendfile(2) by default, and is read and
  sent in blocks with `--no-sendfile` (the test app tells the two apart).
- `default_proc_name`: the name in process titles when `proc_name` is not set.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import procs
from support.kinds import WORKER_KINDS, kind_args
from support.server import APPS_DIR, WsgidServer
from wsgid.exitcodes import ExitCode

ONE_LINE_APP = APPS_DIR / "one_line_app.py"
FILE_WRAPPER_APP = APPS_DIR / "file_wrapper_app.py"


def events(text: str) -> list[dict[str, Any]]:
    """The JSON records of an error log (other lines, such as a traceback's, are skipped).

    A spewing worker writes all the time, and a read can catch its last record half
    written (a write crossing a page boundary lands page by page): that unfinished line,
    with no newline yet, is left out."""
    found = []
    for line in text[: text.rfind("\n") + 1].splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if isinstance(record, dict):
                found.append(record)
    return found


def app_line() -> str:
    """What spew writes for the one-line app's line: `module:lineno: source`."""
    lines = ONE_LINE_APP.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("app ="))
    return f"one_line_app:{number}: {lines[number - 1].rstrip()}"


# --- spew ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_spew_writes_the_apps_line_to_the_error_log_from_the_worker(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = wsgid(
        "one_line_app:app",
        "--spew",
        "--log-level",
        "debug",
        "--log-format",
        "json",
        *kind_args(kind),
        workers=1,
    )
    assert server.get("/").body == b"one line\n"
    wanted = app_line()
    server.wait_log(json.dumps(wanted)[1:-1], timeout=10)
    records = events(server.errlog())
    spewed = [r for r in records if r["event"] == "spew"]
    assert any(r["line"] == wanted for r in spewed), wanted
    workers = set(server.worker_pids())
    assert {r["pid"] for r in spewed} <= workers, "a line traced outside the workers"
    enabled = [r for r in records if r["event"] == "spew.enabled"]
    assert len(enabled) == 1 and enabled[0]["pid"] == server.pid, "one warning, by the master"
    assert enabled[0]["level"] == "warning" and "untraced" in enabled[0]


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_spew_worker_that_logs_an_app_error_answers_and_stops_promptly(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """The worker's own records (an app's traceback) are not traced: a line traced inside
    the sink's locked write would log into the same sink and wait for its own lock."""
    server = wsgid(
        "misbehaving_app:app", "--spew", "--log-level", "debug", *kind_args(kind),
        "--graceful-timeout", "30", workers=1,
    )  # fmt: skip
    assert server.get("/raise", timeout=20).status == 500
    assert server.get("/raise", timeout=20).status == 500  # the worker still serves
    server.wait_log("app.error", timeout=10)
    stopping = time.monotonic()
    assert server.stop() == 0, server.errlog()
    assert time.monotonic() - stopping < 20, "the stop waited for graceful_timeout"


def test_without_spew_no_line_is_traced(wsgid: Callable[..., WsgidServer]) -> None:
    server = wsgid("one_line_app:app", "--log-level", "debug", "--log-format", "json", workers=1)
    assert server.get("/").body == b"one line\n"
    assert server.stop() == 0
    names = {r["event"] for r in events(server.errlog())}
    assert "master.stopped" in names
    assert not {"spew", "spew.enabled", "spew.inactive"} & names


def test_spew_below_debug_level_warns_and_traces_nothing(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid("one_line_app:app", "--spew", "--log-format", "json", workers=1)
    assert server.get("/").body == b"one line\n"
    assert server.stop() == 0
    records = events(server.errlog())
    inactive = [r for r in records if r["event"] == "spew.inactive"]
    assert len(inactive) == 1 and "debug" in inactive[0]["fix"]
    assert not [r for r in records if r["event"] == "spew"]


# --- reuse_port ----------------------------------------------------------------------------------


def second_on_the_port(
    wsgid: Callable[..., WsgidServer], first: WsgidServer, *args: str
) -> WsgidServer:
    """Another wsgid on `first`'s port (not started by the harness's free port)."""
    argv = [sys.executable, "-m", "wsgid", "sleep_app:app", "--bind", f"127.0.0.1:{first.port}"]
    server = wsgid(None, command=lambda _port: [*argv, *args], start=False)
    server.port = first.port
    return server


def test_reuse_port_lets_two_wsgid_serve_one_port_and_one_take_over(
    wsgid: Callable[..., WsgidServer],
) -> None:
    first = wsgid("sleep_app:app", "--reuse-port", workers=1)
    second = second_on_the_port(wsgid, first, "--reuse-port")
    second.wait_log("master.ready", timeout=30)
    second.check_running()
    pids = {"first": set(first.worker_pids()), "second": set(second.wait_workers(1))}

    served = set()
    for _ in range(200):  # one connection each: the kernel spreads them by their ports
        pid = json.loads(first.get("/pid").body)["pid"]
        served |= {name for name, workers in pids.items() if pid in workers}
        if len(served) == 2:
            break
    assert served == {"first", "second"}, "the kernel never handed the second instance a client"

    assert first.stop(signal.SIGTERM) == 0
    for _ in range(20):  # every connection now goes to the second instance
        assert json.loads(second.get("/pid").body)["pid"] in pids["second"]
    assert second.stop() == 0


def test_without_reuse_port_a_second_wsgid_cannot_bind_the_port(
    wsgid: Callable[..., WsgidServer],
) -> None:
    first = wsgid("sleep_app:app", "--reuse-port", workers=1)
    second = second_on_the_port(wsgid, first)
    assert second.wait_exit(timeout=30) == ExitCode.LISTEN_FAILED
    assert f"cannot bind 127.0.0.1:{first.port}" in second.errlog()
    assert first.get("/pid").status == 200


# --- sendfile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKER_KINDS)
@pytest.mark.parametrize("sendfile", [True, False], ids=["default", "no-sendfile"])
def test_file_wrapper_bodies_go_by_sendfile_unless_no_sendfile(
    wsgid: Callable[..., WsgidServer], kind: str, sendfile: bool
) -> None:
    args = [*kind_args(kind), *([] if sendfile else ["--no-sendfile"])]
    server = wsgid("file_wrapper_app:app", *args)
    on_disk = Path(FILE_WRAPPER_APP).read_bytes()
    for _ in range(2):  # twice: the second on a worker that already served one
        body = server.get("/").body
        # sendfile(2) sends the bytes on disk; reading the file in Python upper-cases them.
        assert body == (on_disk if sendfile else on_disk.upper())


# --- default_proc_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "title"),
    [
        (["--default-proc-name", "shop"], "shop"),
        (["--default-proc-name", "shop", "--name", "front"], "front"),
        ([], "sleep_app:app"),
    ],
    ids=["default-proc-name", "proc-name-wins", "the-app"],
)
def test_process_titles_use_default_proc_name_when_proc_name_is_unset(
    wsgid: Callable[..., WsgidServer], args: list[str], title: str
) -> None:
    server = wsgid("sleep_app:app", *args, workers=1)
    assert procs.cmdline(server.pid).startswith(f"wsgid: master [{title}]")
    worker = server.wait_workers(1)[0]
    assert procs.cmdline(worker).startswith(f"wsgid: worker [{title}]")
