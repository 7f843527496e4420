"""What the application contributes to the logs: request ids, output, stdlib records, levels.

Request ids: a valid `X-Request-ID` from a trusted peer (loopback, the default
forwarded_allow_ips) is adopted, anything else replaced; the id is in the environ
(`wsgid.request_id`), in the response when `request_id_response_header` asks for it, in the
access record and in every error event of the request, the timeout stack dump included. The
client's own header stays what the client sent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_logging_app import APP, app_args, read_lines, wait_for

from support.client import run_concurrently
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

GENERATED = re.compile(r"[0-9a-f]{20}")


def json_server(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, *args: str, workers: int = 1
) -> tuple[
    WsgidServer, Callable[[], list[dict[str, object]]], Callable[[], list[dict[str, object]]]
]:
    access, error = workdir.logs / "access.log", workdir.logs / "error.log"
    server = wsgid(
        APP, *app_args(), "--access-logfile", str(access), "--access-logformat", "json",
        "--error-logfile", str(error), "--log-format", "json",
        "--request-id-response-header", "X-Request-ID", *args, workers=workers,
    )  # fmt: skip

    def read(path: Path) -> Callable[[], list[dict[str, object]]]:
        return lambda: [json.loads(line) for line in read_lines(path)]

    return server, read(access), read(error)


def event(read: Callable[[], list[dict[str, object]]], **match: object) -> dict[str, object]:
    found = wait_for(
        lambda: [e for e in read() if all(e.get(k) == v for k, v in match.items())],
        what=f"an event with {match}",
    )
    return found[0]


# --------------------------------------------------------------------------- request ids


def test_valid_incoming_request_id_is_kept_everywhere(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, access, _ = json_server(wsgid, workdir)
    r = server.get("/rid", headers={"X-Request-ID": "0f3e-4b1c:9d2a"})
    assert r.header("X-Request-ID") == "0f3e-4b1c:9d2a"
    body = r.json()
    assert isinstance(body, dict)
    assert body == {"environ": "0f3e-4b1c:9d2a", "wsgid": "0f3e-4b1c:9d2a", "pid": body["pid"]}
    assert event(access, request_id="0f3e-4b1c:9d2a")["path"] == "/rid"


def test_invalid_incoming_request_id_is_replaced(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, access, _ = json_server(wsgid, workdir)
    for bad in ('a"b', "x" * 201, "spaces are not ok", "é"):
        r = server.get("/rid", headers={"X-Request-ID": bad})
        rid = r.header("X-Request-ID")
        assert rid and GENERATED.fullmatch(rid), rid
        data = r.json()
        assert data["wsgid"] == rid  # type: ignore[index]
        assert data["environ"] == bad, "the client's header is left as it was sent"  # type: ignore[index]
        assert event(access, request_id=rid)["status"] == 200


def test_generated_ids_are_unique_across_workers(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, _ = json_server(wsgid, workdir, workers=2)
    seen: dict[str, int] = {}
    pids = set()
    for _ in range(60):
        r = server.get("/rid")
        rid, pid = r.header("X-Request-ID"), r.json()["pid"]  # type: ignore[index]
        assert rid and GENERATED.fullmatch(rid) and rid not in seen
        seen[rid] = pid
        pids.add(pid)
    prefixes = {rid[:12] for rid in seen}
    assert len(prefixes) == len(pids), "one random prefix per worker"


def test_an_app_setting_its_own_request_id_header_wins(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, _ = json_server(wsgid, workdir)
    r = server.get("/own-rid", headers={"X-Request-ID": "client-id"})
    assert r.headers.get_all("X-Request-ID") == ["app-chosen"]


def test_request_id_in_traceback_and_timeout_dump(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, errors = json_server(wsgid, workdir, "--timeout", "2")
    assert server.get("/boom", headers={"X-Request-ID": "tb-1"}).status == 500
    boom = event(errors, event="app.error")
    assert boom["request_id"] == "tb-1" and "RuntimeError: boom" in str(boom["exception"])
    # The worker is killed under this request: the client sees the connection end.
    with contextlib.suppress(OSError, http.client.HTTPException):
        server.get("/sleep?s=60", headers={"X-Request-ID": "stuck-1"}, timeout=30)
    dump = event(errors, event="worker.timeout_dump")
    assert dump["request_id"] == "stuck-1"
    assert dump["path"] == "/sleep" and "time.sleep" in str(dump["stacks"])


# --------------------------------------------------------------------------- app output


def test_capture_output_turns_prints_into_events(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, errors = json_server(wsgid, workdir, "--capture-output")
    r = server.get("/print?msg=hello-capture")
    pid = server.worker_pids()[0]
    out = event(errors, event="app.output", stream="stdout")
    err = event(errors, event="app.output", stream="stderr")
    assert (out["message"], out["level"], out["pid"]) == ("hello-capture", "info", pid)
    assert (err["message"], err["level"], err["pid"]) == ("hello-capture-err", "error", pid)
    assert r.status == 200 and "hello-capture" not in server.outlog() + server.errlog()


def test_capture_output_turns_the_post_fork_hooks_prints_into_events(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """post_fork runs in the new worker before its app is loaded: its prints are the
    worker's output as the app's are, captured from the worker's start."""
    post_fork = "test_logging_app:post_fork"
    server, _, errors = json_server(wsgid, workdir, "--capture-output", "--post-fork", post_fork)
    pid = server.worker_pids()[0]
    printed = event(errors, event="app.output", stream="stdout", message=f"post_fork in {pid}")
    assert printed["pid"] == pid
    assert "post_fork in" not in server.outlog() + server.errlog()


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_captured_output_is_logged_whole_when_the_worker_exits(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    # max_requests 1: the worker exits right after the response, its output still in the
    # pipe and in its stdout buffer, the last line without its newline.
    server, _, errors = json_server(
        wsgid, workdir, *kind_args(kind), "--capture-output", "--max-requests", "1"
    )
    assert server.get("/many?n=3000&tail=the-end").status == 200

    def whole() -> list[object] | None:
        lines = [e["message"] for e in errors() if e.get("event") == "app.output"]
        return lines if "the-end" in lines else None

    lines = wait_for(whole, timeout=60, what="the last, unterminated line")
    assert lines[:3000] == [f"many {i}" for i in range(3000)], len(lines)


def test_without_capture_output_prints_stay_on_stdout(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, errors = json_server(wsgid, workdir)
    server.get("/print?msg=not-captured")
    server.wait_log("not-captured", stream="stdout")
    assert not [e for e in errors() if e["event"] == "app.output"]


# A common gunicorn config for containers: its loggers to stdout through logconfig_dict, and
# capture_output on for what the app prints.
STDOUT_LOGCONFIG = """\
capture_output = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "STDLIB %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
"""


def test_capture_output_does_not_capture_what_a_logconfig_handler_writes_to_stdout(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The error events handed to a logconfig handler on stdout are written to the real stdout:
    captured, each came back as an app.output event, handed to the handler again, captured
    again, without end."""
    conf = workdir.root / "gunicorn.conf.py"
    conf.write_text(STDOUT_LOGCONFIG)
    server, _, errors = json_server(wsgid, workdir, "-c", str(conf))
    assert server.get("/print?msg=printed-by-app").status == 200
    event(errors, event="app.output", stream="stdout", message="printed-by-app")
    server.wait_log("STDLIB gunicorn.error", stream="stdout")
    assert server.stop() == 0
    captured = [str(e["message"]) for e in errors() if e["event"] == "app.output"]
    assert not [m for m in captured if "STDLIB" in m], captured
    started = [line for line in server.outlog().splitlines() if "master.started" in line]
    assert len(started) == 1 and started[0].startswith("STDLIB gunicorn.error {"), started


def test_wsgi_errors_and_unhandled_stdlib_records_are_events_with_the_request_id(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, errors = json_server(wsgid, workdir)
    server.get("/errors?msg=via-wsgi-errors", headers={"X-Request-ID": "we-1"})
    server.get("/stdlib?msg=via-logging", headers={"X-Request-ID": "sl-1"})
    written = event(errors, event="wsgi.errors")
    assert (written["message"], written["request_id"]) == ("via-wsgi-errors", "we-1")
    record = event(errors, event="stdlib via-logging")
    assert (record["logger"], record["level"], record["user"], record["request_id"]) == (
        "testapp", "warning", "alice", "sl-1",
    )  # fmt: skip


def test_logconfig_dict_routes_all_app_records_through_the_error_log(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    config = workdir.root / "wsgid.toml"
    config.write_text(
        "[logging.logconfig_dict]\nversion = 1\ndisable_existing_loggers = false\n"
        '[logging.logconfig_dict.handlers.wsgid]\nclass = "wsgid.logs.stdlib.StdlibHandler"\n'
        '[logging.logconfig_dict.root]\nlevel = "INFO"\nhandlers = ["wsgid"]\n'
    )
    server, _, errors = json_server(wsgid, workdir, "-c", str(config))
    server.get("/stdlib?msg=configured", headers={"X-Request-ID": "cfg-1"})
    assert event(errors, event="stdlib configured")["request_id"] == "cfg-1"


def test_logconfig_file_gives_the_app_its_own_handlers(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    own = workdir.logs / "app-own.log"
    ini = workdir.root / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
        "[logger_root]\nlevel=INFO\nhandlers=file\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(own)!r},)\n"
        "[formatter_plain]\nformat=OWN %(name)s %(message)s\n"
    )
    server, _, errors = json_server(wsgid, workdir, "--log-config", str(ini))
    server.get("/stdlib?msg=to-own-file")
    wait_for(lambda: "OWN testapp stdlib to-own-file" in read_lines(own), what="the app's file")
    assert not [e for e in errors() if "to-own-file" in str(e["event"])]


def test_loglevel_filters_the_error_log(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, _, errors = json_server(wsgid, workdir, "--log-level", "error")
    server.get("/boom")
    event(errors, event="app.error")
    assert {e["level"] for e in errors()} == {"error"}


def test_gthread_threads_each_bind_their_own_request_id(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server, access, errors = json_server(wsgid, workdir, "--threads", "4")

    def call(n: int) -> Callable[[], int]:
        return lambda: server.get(f"/stdlib?msg=t{n}", headers={"X-Request-ID": f"t-{n}"}).status

    assert run_concurrently([call(n) for n in range(16)], timeout=60) == [200] * 16
    for n in range(16):
        assert event(errors, event=f"stdlib t{n}")["request_id"] == f"t-{n}"
        assert event(access, request_id=f"t-{n}")["query"] == f"msg=t{n}"
