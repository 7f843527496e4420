"""Request ids on the wire, against real wsgid processes of every worker kind.

Raw requests over loopback to `proxy_echo_app`: the id in the environ (`wsgid.request_id`),
in the JSON access log, and in the response only when `request_id_response_header` names a
header; adopted from `request_id_header` (X-Request-ID) only when the TCP peer is on
forwarded_allow_ips, never when that setting is empty; a client's own X-Request-ID is left in
the environ as it sent it, and nothing the client did not send is added.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_logging_app import read_lines

from support.client import RawResult, poll
from support.echo import ECHO_APP, Seen, answer, head
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

kinds = pytest.mark.parametrize("kind", WORKER_KINDS)
FRESH = re.compile(r"[0-9a-f]{20}")  # an id wsgid made (logs/request_id.py)


def serve(wsgid: Callable[..., WsgidServer], kind: str, *args: str) -> WsgidServer:
    return wsgid(ECHO_APP, *kind_args(kind), *args, workers=1)


def exchange(
    server: WsgidServer, path: str, *fields: str, source: str | None = None
) -> tuple[RawResult, Seen]:
    """One GET on a new connection from `source`: the reply and what the app saw."""
    with server.raw(source=source) as conn:
        reply = conn.request(head(path, *fields))
    return reply, answer(reply)


def logged_id(access_log: Path, path: str) -> object:
    """The request_id of the JSON access record of the request for `path`."""

    def record() -> dict[str, object] | None:
        found = [json.loads(line) for line in read_lines(access_log) if f'"path":"{path}"' in line]
        return found[0] if found else None

    return poll(record, timeout=5.0, what=f"the access record of {path}")["request_id"]


def with_access_log(workdir: WorkDir) -> tuple[Path, list[str]]:
    path = workdir.logs / "access.log"
    return path, ["--access-logfile", str(path), "--access-logformat", "json"]


@kinds
def test_default_response_has_no_request_id_and_environ_no_http_x_request_id(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind)
    reply, env = exchange(server, "/plain")
    rid = env["wsgid.request_id"]
    assert rid is not None and FRESH.fullmatch(rid), env
    assert "HTTP_X_REQUEST_ID" not in env, env
    assert reply.headers.get("X-Request-ID") is None, reply.headers.items()
    assert all(rid not in value for _, value in reply.headers.items()), reply.headers.items()


@kinds
def test_trusted_peer_request_id_adopted_and_logged(
    wsgid: Callable[..., WsgidServer], kind: str, workdir: WorkDir
) -> None:
    access, args = with_access_log(workdir)
    server = serve(wsgid, kind, *args)
    reply, env = exchange(server, "/adopted", "X-Request-ID: proxy-id-42")
    assert env["wsgid.request_id"] == "proxy-id-42", env
    assert env["HTTP_X_REQUEST_ID"] == "proxy-id-42", env
    assert reply.headers.get("X-Request-ID") is None, reply.headers.items()
    assert logged_id(access, "/adopted") == "proxy-id-42"


@kinds
def test_untrusted_peer_request_id_not_adopted_fresh_id_logged(
    wsgid: Callable[..., WsgidServer], kind: str, workdir: WorkDir
) -> None:
    access, args = with_access_log(workdir)
    server = serve(wsgid, kind, "--forwarded-allow-ips", "127.0.0.1", *args)
    _, env = exchange(server, "/untrusted", "X-Request-ID: chosen-by-client", source="127.0.0.2")
    assert env["HTTP_X_REQUEST_ID"] == "chosen-by-client", env  # the client's header, as sent
    rid = env["wsgid.request_id"]
    assert rid is not None and FRESH.fullmatch(rid), env
    assert logged_id(access, "/untrusted") == rid


@kinds
def test_request_id_response_header_x_trace_id(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--request-id-response-header", "X-Trace-Id")
    fresh_reply, fresh = exchange(server, "/fresh")
    adopted_reply, adopted = exchange(server, "/adopted", "X-Request-ID: proxy-id-43")
    assert fresh_reply.headers.get("X-Trace-Id") == fresh["wsgid.request_id"], fresh_reply.headers
    assert adopted["wsgid.request_id"] == "proxy-id-43", adopted
    assert adopted_reply.headers.get("X-Trace-Id") == "proxy-id-43", adopted_reply.headers
    for reply in (fresh_reply, adopted_reply):
        assert reply.headers.get("X-Request-ID") is None, reply.headers.items()
    assert "HTTP_X_TRACE_ID" not in fresh, fresh


@kinds
def test_request_id_header_empty_never_adopts(
    wsgid: Callable[..., WsgidServer], kind: str, workdir: WorkDir
) -> None:
    access, args = with_access_log(workdir)
    server = serve(wsgid, kind, "--request-id-header", "", *args)
    _, env = exchange(server, "/never", "X-Request-ID: proxy-id-44")
    rid = env["wsgid.request_id"]
    assert rid is not None and FRESH.fullmatch(rid), env
    assert env["HTTP_X_REQUEST_ID"] == "proxy-id-44", env
    assert logged_id(access, "/never") == rid
