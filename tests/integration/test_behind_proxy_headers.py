"""wsgid behind real HTTP proxies on loopback, on every worker kind: forwarded headers.

The configurations are the blocks of docs/behind-a-proxy.md, run as written but for their
addresses (support/proxies.py): nginx `proxy_pass` to wsgid's TCP listener and to its UNIX
socket, and HAProxy `mode http` with `option forwardfor`, each setting X-Forwarded-For,
X-Forwarded-Proto and X-Request-ID over what the client wrote. Also checks that every block
of the page is run by one of these tests.

The client connects from `CLIENT` (127.0.0.2), the proxies from 127.0.0.1. Raw requests
(untrusted peers, contradictory or underscored headers, X-Forwarded-For walks) are tested in
test_forwarded_headers.py, request ids in test_request_ids.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from support.kinds import WORKER_KINDS
from support.proxies import CLIENT, CurlReply, Proxies, curl, serve, snippet, snippets
from support.server import WsgidServer

PROXY_SOURCE = "127.0.0.1"
# What the client writes: a forged chain, a forged scheme and an id of its choosing. A proxy
# must replace the last two, and wsgid must take the client's address from the right end of
# the first (what the proxy appended), never from the left (what the client wrote).
CLIENT_HEADERS = {
    "X-Forwarded-For": "198.51.100.66",
    "X-Forwarded-Proto": "https",
    "X-Request-ID": "chosen-by-the-client",
}
NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id
HAPROXY_REQUEST_ID = re.compile(r"[0-9A-F]{40}")  # the page's unique-id-format

kinds = pytest.mark.parametrize("kind", WORKER_KINDS)


def through_proxy(url: str) -> CurlReply:
    """curl from the client, with the client's forgeries (CLIENT_HEADERS)."""
    fields = (f"{name}: {value}" for name, value in CLIENT_HEADERS.items())
    return curl(url, *(arg for field in fields for arg in ("-H", field)))


def assert_forwarded(reply: CurlReply, scheme: str, request_id: re.Pattern[str]) -> None:
    """The proxy's word was taken: the client's address and scheme, the proxy's id."""
    assert reply.status == 200, reply.body
    seen = reply.seen()
    assert seen["REMOTE_ADDR"] == CLIENT, seen
    assert seen["wsgi.url_scheme"] == scheme, seen
    assert seen["HTTP_X_FORWARDED_PROTO"] == scheme, seen  # the proxy's, not the client's
    assert request_id.fullmatch(seen["HTTP_X_REQUEST_ID"] or ""), seen
    assert seen["wsgid.request_id"] == seen["HTTP_X_REQUEST_ID"], seen


@kinds
def test_nginx_http_proxy_x_forwarded_proto_sets_scheme(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """`X-Forwarded-Proto $scheme`: https on nginx's TLS port, http on its plain one."""
    server = serve(wsgid, proxies, "wsgid-forwarded", kind)
    http = snippet("nginx-upstream-tcp") + snippet("nginx-http")
    proxies.nginx(http=http, wsgid_port=server.port)
    assert_forwarded(through_proxy(proxies.url("https") + "/s"), "https", NGINX_REQUEST_ID)
    assert_forwarded(through_proxy(proxies.url("http") + "/p"), "http", NGINX_REQUEST_ID)


@kinds
def test_nginx_http_proxy_x_forwarded_for_gives_client_address(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """`remote_addr_from = "x-forwarded-for"`: the client's address, nginx's kept aside."""
    server = serve(wsgid, proxies, "wsgid-forwarded", kind)
    http = snippet("nginx-upstream-tcp") + snippet("nginx-http")
    proxies.nginx(http=http, wsgid_port=server.port)
    reply = through_proxy(proxies.url("http") + "/xff")
    assert_forwarded(reply, "http", NGINX_REQUEST_ID)
    seen = reply.seen()
    assert seen["HTTP_X_FORWARDED_FOR"] == f"198.51.100.66, {CLIENT}", seen
    assert seen["wsgid.peer_addr"] == PROXY_SOURCE, seen
    # nginx sends these and no more; wsgid adds no header of its own.
    sent = {"HOST", "X_FORWARDED_FOR", "X_FORWARDED_PROTO", "X_REQUEST_ID", "USER_AGENT", "ACCEPT"}
    assert {k for k in seen if k.startswith("HTTP_")} == {f"HTTP_{h}" for h in sent}, seen


@kinds
def test_nginx_http_proxy_over_unix_socket(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """A UNIX-socket peer is trusted without being listed."""
    serve(wsgid, proxies, "wsgid-forwarded-unix", kind)
    http = snippet("nginx-upstream-unix") + snippet("nginx-http")
    proxies.nginx(http=http)
    assert_forwarded(through_proxy(proxies.url("https") + "/unix"), "https", NGINX_REQUEST_ID)


@kinds
def test_haproxy_http_option_forwardfor(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """HAProxy adds its own X-Forwarded-For line after the client's: the last one counts."""
    server = serve(wsgid, proxies, "wsgid-forwarded", kind)
    haproxy = proxies.haproxy(snippet("haproxy-http"), wsgid_port=server.port)
    https = through_proxy(proxies.url("https") + "/ha-s")
    assert_forwarded(https, "https", HAPROXY_REQUEST_ID)
    http = through_proxy(proxies.url("http") + "/ha-p")
    assert_forwarded(http, "http", HAPROXY_REQUEST_ID)
    assert http.seen()["HTTP_X_FORWARDED_FOR"] == f"198.51.100.66, {CLIENT}", http.seen()
    state = haproxy.checked("wsgid/app1")
    assert (state["status"], state["check_status"]) == ("UP", "L7OK"), state


def test_every_block_of_the_page_is_run() -> None:
    """Each marked block of docs/behind-a-proxy.md is named by a test of these two files."""
    here = Path(__file__).parent
    sources = "".join(p.read_text() for p in sorted(here.glob("test_behind_proxy*.py")))
    unrun = [name for name in snippets() if f'"{name}"' not in sources]
    assert snippets() and not unrun, f"blocks no test runs: {unrun}"
