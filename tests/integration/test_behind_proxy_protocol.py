"""wsgid behind real PROXY-protocol senders on loopback, on every worker kind.

The configurations are the blocks of docs/behind-a-proxy.md, run as written but for their
addresses (support/proxies.py): HAProxy `mode tcp` with `send-proxy` (v1), `send-proxy-v2`
and `send-proxy-v2-ssl` behind a TLS-terminating frontend, its `check-send-proxy` health
checks (v2 LOCAL), and nginx `stream` with `proxy_protocol on` (v1). Through each, the
client's own X-Forwarded-* headers must not be believed: the proxy is trusted, the client is
not. Then `curl --haproxy-protocol` straight to wsgid, and that rule on its own: on a PROXY
connection forwarded headers are judged on the client the header names.

The client connects from `CLIENT` (127.0.0.2), the proxies from 127.0.0.1, so `REMOTE_ADDR`
tells whose address wsgid took. Hand-built headers (keep-alive, refusals, LOCAL, TLVs, byte
by byte) are tested in test_proxy_protocol_wire.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from support.client import poll
from support.echo import ECHO_APP, Seen, head, seen
from support.kinds import WORKER_KINDS, kind_args
from support.proxies import CLIENT, CurlReply, HAProxy, Proxies, curl, serve, snippet
from support.server import WsgidServer

PROXY_SOURCE = "127.0.0.1"  # where the proxies' connections to wsgid come from
# What a client might write to fool an app that reads these headers itself.
SPOOFED = ("X-Forwarded-Proto: https", "X-Forwarded-For: 198.51.100.66")

kinds = pytest.mark.parametrize("kind", WORKER_KINDS)


def assert_client_seen(reply: CurlReply, protocol: str, scheme: str = "http") -> None:
    """The app saw the client, not the proxy, and none of the client's forwarded headers."""
    assert reply.status == 200, reply.body
    seen = reply.seen()
    assert seen["REMOTE_ADDR"] == CLIENT, seen
    assert seen["REMOTE_PORT"] == str(reply.local_port), seen
    assert seen["wsgid.peer_addr"] == PROXY_SOURCE, seen
    assert seen["wsgid.peer_port"] not in (None, str(reply.local_port)), seen
    assert seen["wsgid.proxy_protocol"] == protocol, seen
    assert seen["wsgi.url_scheme"] == scheme, seen
    # A TCP proxy relays them untouched: judged on the client, which is not trusted.
    assert "HTTP_X_FORWARDED_PROTO" not in seen, seen
    assert "HTTP_X_FORWARDED_FOR" not in seen, seen


def assert_check_passed(haproxy: HAProxy, server: str) -> None:
    state = haproxy.checked(server)
    assert (state["status"], state["check_status"], state["check_code"]) == (
        "UP", "L7OK", "200",
    ), state  # fmt: skip
    assert state["chkfail"] == "0", state


def spoofing_curl(url: str) -> CurlReply:
    return curl(url, *(arg for header in SPOOFED for arg in ("-H", header)))


@kinds
def test_haproxy_send_proxy_v1(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind, "--proxy-protocol", "v1")
    tcp = snippet("haproxy-tcp")
    haproxy = proxies.haproxy(tcp.replace("send-proxy-v2", "send-proxy"), wsgid_port=server.port)
    assert_client_seen(spoofing_curl(proxies.url("http") + "/v1"), "v1")
    assert_check_passed(haproxy, "wsgid_pp/app1")  # its checks send a v1 header


@kinds
def test_haproxy_send_proxy_v2(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind)
    haproxy = proxies.haproxy(snippet("haproxy-tcp"), wsgid_port=server.port)
    assert_client_seen(spoofing_curl(proxies.url("http") + "/v2"), "v2")
    assert_check_passed(haproxy, "wsgid_pp/app1")


@kinds
def test_haproxy_send_proxy_v2_ssl_sets_https(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind, "--proxy-protocol", "auto")
    haproxy = proxies.haproxy(snippet("haproxy-tls"), wsgid_port=server.port)
    assert_client_seen(spoofing_curl(proxies.url("https") + "/tls"), "v2", scheme="https")
    assert_check_passed(haproxy, "wsgid_tls/app1")  # LOCAL, with an SSL field saying no TLS


@kinds
def test_haproxy_tls_passthrough_send_proxy_v2_to_wsgid_tls(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """HAProxy relays TLS untouched after a v2 header: wsgid reads the header, then does
    the handshake itself (the header is read raw, the ClientHello left to OpenSSL)."""
    cert, key, _ = proxies.certificate()
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind,
                   "--certfile", str(cert), "--keyfile", str(key))  # fmt: skip
    haproxy = proxies.haproxy(snippet("haproxy-tls-passthrough"), wsgid_port=server.port)
    assert_client_seen(spoofing_curl(proxies.url("https") + "/passthrough"), "v2", "https")
    assert_check_passed(haproxy, "wsgid_https/app1")  # LOCAL, then TLS, then its GET


@kinds
def test_haproxy_check_send_proxy_passes_and_local_keeps_peer(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    """HAProxy's health checks send a v2 LOCAL header, then `GET /healthz`.

    The check must pass, wsgid must reject nothing, and the checks' requests must carry the
    TCP peer (HAProxy) as REMOTE_ADDR: gunicorn sets it to None for LOCAL.
    """
    access = ("--access-logfile", "-", "--access-logformat", "json")
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind, *access)
    haproxy = proxies.haproxy(snippet("haproxy-tcp"), wsgid_port=server.port)

    def checks_logged() -> list[dict[str, object]]:
        complete = server.outlog().rpartition("\n")[0]  # not a line still being written
        records = [json.loads(line) for line in complete.splitlines() if line.strip()]
        checks = [r for r in records if r.get("path") == "/healthz"]
        return checks if len(checks) >= 2 else []

    assert_check_passed(haproxy, "wsgid_pp/app1")
    checks = poll(checks_logged, timeout=20, what="two health checks in the access log")
    assert all(c["status"] == 200 for c in checks), checks
    assert all(c["remote_addr"] == PROXY_SOURCE and c["remote_port"] for c in checks), checks
    assert "rejected" not in server.errlog(), server.errlog()


@kinds
def test_nginx_stream_proxy_protocol_v1(
    wsgid: Callable[..., WsgidServer], proxies: Proxies, kind: str
) -> None:
    server = serve(wsgid, proxies, "wsgid-proxy-protocol", kind, "--proxy-protocol", "v1")
    proxies.nginx(main=snippet("nginx-stream"), wsgid_port=server.port)
    assert_client_seen(spoofing_curl(proxies.url("http") + "/stream"), "v1")


@kinds
@pytest.mark.parametrize("mode", ["v1", "auto"])
def test_curl_haproxy_protocol_straight_to_wsgid(
    wsgid: Callable[..., WsgidServer], kind: str, mode: str
) -> None:
    """curl names its own end of the connection as the client's."""
    server = wsgid(ECHO_APP, *kind_args(kind), "--proxy-protocol", mode, workers=1)
    reply = curl(server.url + "/curl", "--haproxy-protocol", interface=PROXY_SOURCE)
    assert reply.status == 200, reply.body
    seen = reply.seen()
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == (PROXY_SOURCE, str(reply.local_port))
    assert seen["wsgid.proxy_protocol"] == "v1", seen
    assert (seen["wsgid.peer_addr"], seen["wsgid.peer_port"]) == (
        PROXY_SOURCE, str(reply.local_port),
    ), seen  # fmt: skip


@kinds
def test_forwarded_headers_on_proxy_connection_judged_on_header_client(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """Behind an L4 proxy the HTTP bytes are the client's: its forwarded headers count only
    if the client the header names is trusted, whatever the proxy's own address."""
    server = wsgid(ECHO_APP, *kind_args(kind), "--proxy-protocol", "v1", workers=1)
    request = head("/judged", *SPOOFED)

    def through_proxy(client: str) -> Seen:
        header = b"PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (client.encode(), server.port)
        with server.raw() as conn:  # from 127.0.0.1: on both allow lists
            return seen(conn, header + request)

    relayed = through_proxy("203.0.113.7")
    assert relayed["wsgi.url_scheme"] == "http", relayed
    assert "HTTP_X_FORWARDED_PROTO" not in relayed, relayed
    trusted = through_proxy(PROXY_SOURCE)  # a client that is on forwarded_allow_ips itself
    assert trusted["wsgi.url_scheme"] == "https", trusted
    assert trusted["HTTP_X_FORWARDED_PROTO"] == "https", trusted
