"""Forwarded headers on the wire, against real wsgid processes of every worker kind.

Raw requests over loopback to `proxy_echo_app`, which answers with what the environ says:
- which peers are believed (`forwarded_allow_ips`: the default loopback addresses, an IPv6
  listener's ::1, `*`, a CIDR network, $FORWARDED_ALLOW_IPS), judged on the TCP peer (on a
  PROXY connection, on the client its header names: test_proxy_protocol_wire.py); a second
  client address is had by binding the client's socket to 127.0.0.2;
- what a trusted peer may say: the scheme (`secure_scheme_headers`; contradictions refused,
  trailers and underscore twins never counted; repeated lines judged each, as gunicorn
  does), SCRIPT_NAME / REMOTE_USER
  (`forwarder_headers`), the client's address (`remote_addr_from`: X-Forwarded-For and
  RFC 7239 Forwarded, walked from the right);
- what becomes of an untrusted peer's forwarded headers (removed, or kept but not believed);
- that a plain request's environ holds exactly the client's headers as HTTP_* keys.

Tests of wsgid behind real HAProxy and nginx are in test_behind_proxy_*.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from support.client import RawConnection, chunked
from support.echo import ECHO_APP, Seen, head, http_fields, refused, seen
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer

UNTRUSTED = "127.0.0.2"  # on loopback, but off the default forwarded_allow_ips
kinds = pytest.mark.parametrize("kind", WORKER_KINDS)


def serve(
    wsgid: Callable[..., WsgidServer], kind: str, *args: str, env: dict[str, str] | None = None
) -> WsgidServer:
    return wsgid(ECHO_APP, *kind_args(kind), *args, workers=1, env=env)


def ask(server: WsgidServer, *fields: str, path: str = "/", source: str | None = None) -> Seen:
    """One GET with `fields` on a new connection from `source`; what the app saw."""
    with server.raw(source=source) as conn:
        return seen(conn, head(path, *fields))


# --------------------------------------------------------------------------- the scheme


@kinds
def test_contradictory_secure_scheme_headers_from_trusted_peer_400_and_close(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """X-Forwarded-Proto says https, X-Forwarded-Ssl says not: refused, and the pipelined
    request after it is never answered."""
    server = serve(wsgid, kind)
    contradiction = head("/c", "X-Forwarded-Proto: https", "X-Forwarded-Ssl: off")
    with server.raw() as conn:
        refused(conn, contradiction + head("/after"), 400)


@kinds
def test_repeated_secure_scheme_header_lines_that_agree_say_https(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """Two proxies each added `X-Forwarded-Proto: https`: the client used https."""
    server = serve(wsgid, kind)
    env = ask(server, "X-Forwarded-Proto: https", "X-Forwarded-Proto: https")
    assert env["wsgi.url_scheme"] == "https", env


@kinds
def test_repeated_secure_scheme_header_lines_that_disagree_400_and_close(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind)
    with server.raw() as conn:
        refused(conn, head("/c", "X-Forwarded-Proto: https", "X-Forwarded-Proto: http"), 400)


@kinds
def test_scheme_header_in_chunked_trailer_ignored(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind)
    body = chunked([b"hello"], trailer="X-Forwarded-Proto: https\r\n")
    with server.raw() as conn:
        post = head("/t", "Transfer-Encoding: chunked", method="POST") + body
        trailed = seen(conn, post)
        # The same header in the head, on the same connection, is believed.
        in_head = seen(conn, head("/h", "X-Forwarded-Proto: https"))
    assert trailed["wsgi.url_scheme"] == "http", trailed
    assert "HTTP_X_FORWARDED_PROTO" not in trailed, trailed
    assert in_head["wsgi.url_scheme"] == "https", in_head


@kinds
@pytest.mark.parametrize("header_map", ["drop", "dangerous"])
def test_underscore_x_forwarded_proto_twin_never_trusted(
    wsgid: Callable[..., WsgidServer], kind: str, header_map: str
) -> None:
    """`X_Forwarded_Proto` from a trusted peer neither sets the scheme nor reaches
    HTTP_X_FORWARDED_PROTO, alone or beside the real header (which it does not join)."""
    server = serve(wsgid, kind, "--header-map", header_map)
    with server.raw() as conn:
        alone = seen(conn, head("/a", "X_Forwarded_Proto: https"))
        beside = seen(conn, head("/b", "X-Forwarded-Proto: http", "X_Forwarded_Proto: https"))
    assert alone["wsgi.url_scheme"] == "http", alone
    assert "HTTP_X_FORWARDED_PROTO" not in alone, alone
    assert beside["wsgi.url_scheme"] == "http", beside
    assert beside["HTTP_X_FORWARDED_PROTO"] == "http", beside


# --------------------------------------------------------------------------- forwarder headers

SCRIPT_NAMES = ("Script_Name", "SCRIPT_NAME")  # how proxies spell it


@kinds
def test_untrusted_script_name_header_not_in_environ(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--forwarded-allow-ips", "127.0.0.1")
    with server.raw(source=UNTRUSTED) as conn:
        answers = [seen(conn, head("/app/x", f"{name}: /app")) for name in SCRIPT_NAMES]
    for env in answers:
        assert env["REMOTE_ADDR"] == UNTRUSTED, env
        assert env["SCRIPT_NAME"] == "", env
        assert env["PATH_INFO"] == "/app/x", env
        assert http_fields(env) == {"HTTP_HOST": "t"}, env


@kinds
def test_trusted_script_name_header_sets_script_name_and_strips_path_info(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--forwarded-allow-ips", "127.0.0.1")
    with server.raw() as conn:
        below = seen(conn, head("/app/x/y", "SCRIPT_NAME: /app"))
        itself = seen(conn, head("/app", "Script_Name: /app/"))
    assert (below["SCRIPT_NAME"], below["PATH_INFO"]) == ("/app", "/x/y"), below
    assert (itself["SCRIPT_NAME"], itself["PATH_INFO"]) == ("/app", ""), itself
    assert http_fields(below) == {"HTTP_HOST": "t"}, below


@kinds
def test_trusted_script_name_header_path_outside_it_400(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind)
    with server.raw() as conn:
        refused(conn, head("/other/x", "SCRIPT_NAME: /app"), 400)


@kinds
@pytest.mark.parametrize("listed", [False, True], ids=["default", "listed"])
def test_a_path_info_header_routes_only_when_listed_and_only_to_a_path(
    wsgid: Callable[..., WsgidServer], kind: str, listed: bool
) -> None:
    """Off by default: a trusted proxy that passes headers with `_` (HAProxy, Envoy) would let
    any client route past the proxy's rules on the path (gunicorn routes by the path too)."""
    args = ["--forwarder-headers", "SCRIPT_NAME,PATH_INFO"] if listed else []
    server = serve(wsgid, kind, *args)
    with server.raw() as conn:
        env = seen(conn, head("/public", "PATH_INFO: /admin"))
    assert env["PATH_INFO"] == ("/admin" if listed else "/public"), env
    if listed:
        with server.raw() as conn:
            refused(conn, head("/public", "PATH_INFO: admin"), 400)


@kinds
@pytest.mark.parametrize("listed", [False, True], ids=["default", "listed"])
def test_remote_user_header_only_when_in_forwarder_headers(
    wsgid: Callable[..., WsgidServer], kind: str, listed: bool
) -> None:
    args = ["--forwarder-headers", "SCRIPT_NAME,PATH_INFO,REMOTE_USER"] if listed else []
    server = serve(wsgid, kind, *args)
    trusted = ask(server, "REMOTE_USER: alice")
    untrusted = ask(server, "REMOTE_USER: alice", source=UNTRUSTED)
    assert trusted["REMOTE_USER"] == ("alice" if listed else None), trusted
    assert untrusted["REMOTE_USER"] is None, untrusted
    for env in (trusted, untrusted):
        assert http_fields(env) == {"HTTP_HOST": "t"}, env


# --------------------------------------------------------------------------- the client address


def assert_client(env: Seen, address: str, conn_port: int) -> None:
    """REMOTE_ADDR is `address`; the TCP peer (this test's socket) is in wsgid.peer_*."""
    assert env["REMOTE_ADDR"] == address, env
    assert env["wsgid.peer_addr"] == "127.0.0.1", env
    assert env["wsgid.peer_port"] == str(conn_port), env


def local_port(conn: RawConnection) -> int:
    return int(conn.sock.getsockname()[1])


@kinds
def test_xff_rightmost_untrusted_hop_over_two_field_lines(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """The client wrote the first line; the proxy (trusted 127.0.0.1, in front of us) added
    the client it saw and itself on the second. The hop right of the trusted one is taken,
    never the client-written leftmost."""
    server = serve(wsgid, kind, "--remote-addr-from", "x-forwarded-for")
    fields = ("X-Forwarded-For: 192.0.2.66", "X-Forwarded-For: 203.0.113.5, 127.0.0.1")
    with server.raw() as conn:
        env = seen(conn, head("/", *fields))
        assert_client(env, "203.0.113.5", local_port(conn))
    assert env["HTTP_X_FORWARDED_FOR"] == "192.0.2.66, 203.0.113.5, 127.0.0.1", env


@kinds
def test_xff_all_trusted_chain_takes_leftmost(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = serve(wsgid, kind, "--remote-addr-from", "x-forwarded-for")
    with server.raw() as conn:
        env = seen(conn, head("/", "X-Forwarded-For: ::1, 127.0.0.1"))
        assert_client(env, "::1", local_port(conn))


@kinds
def test_xff_unknown_hop_keeps_tcp_peer(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    """An `unknown` hop right of the client: nothing reliable can be said, the peer stays."""
    server = serve(wsgid, kind, "--remote-addr-from", "x-forwarded-for")
    with server.raw() as conn:
        env = seen(conn, head("/", "X-Forwarded-For: 203.0.113.5, unknown"))
        assert env["REMOTE_ADDR"] == "127.0.0.1", env
        assert env["REMOTE_PORT"] == str(local_port(conn)), env
    assert "wsgid.peer_addr" not in env, env


@kinds
def test_rfc7239_forwarded_ipv6_for_with_port_and_proto(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--remote-addr-from", "forwarded")
    with server.raw() as conn:
        env = seen(conn, head("/", 'Forwarded: for="[2001:db8::1]:4711";proto=https'))
        assert_client(env, "2001:db8::1", local_port(conn))
    assert env["REMOTE_PORT"] == "4711", env
    assert env["wsgi.url_scheme"] == "https", env


# --------------------------------------------------------------------------- untrusted peers

# Every forwarded header an untrusted client could forge, as a proxy would write them.
FORGED = (
    "X-Forwarded-For: 198.51.100.1",
    "X-Forwarded-Host: forged.example",
    "X-Forwarded-Port: 443",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Protocol: ssl",
    "X-Forwarded-Ssl: on",
    "X-Forwarded-Prefix: /forged",
    "Forwarded: for=198.51.100.1;proto=https",
    "X-Real-IP: 198.51.100.1",
)
OWN = ("User-Agent: client/1.0", "X-Request-ID: client-1")  # the client's own headers


def forged_request(server: WsgidServer) -> Seen:
    """The forged headers and the client's own, from UNTRUSTED."""
    with server.raw(source=UNTRUSTED) as conn:
        env = seen(conn, head("/", *FORGED, *OWN))
        assert env["REMOTE_PORT"] == str(local_port(conn)), env
    # Not believed: the address and the scheme are the connection's.
    assert env["REMOTE_ADDR"] == UNTRUSTED, env
    assert env["wsgi.url_scheme"] == "http", env
    assert "wsgid.peer_addr" not in env, env
    return env


@kinds
def test_untrusted_forwarded_headers_removed_from_environ(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--remote-addr-from", "x-forwarded-for")
    env = forged_request(server)
    assert http_fields(env) == {
        "HTTP_HOST": "t",
        "HTTP_USER_AGENT": "client/1.0",
        "HTTP_X_REQUEST_ID": "client-1",
    }, env


@kinds
def test_untrusted_forwarded_headers_kept_without_clearing_but_not_believed(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(
        wsgid, kind, "--remote-addr-from", "x-forwarded-for",
        "--no-clear-untrusted-forwarded-headers",
    )  # fmt: skip
    env = forged_request(server)
    assert http_fields(env) == {
        "HTTP_HOST": "t",
        "HTTP_USER_AGENT": "client/1.0",
        "HTTP_X_REQUEST_ID": "client-1",
        "HTTP_X_FORWARDED_FOR": "198.51.100.1",
        "HTTP_X_FORWARDED_HOST": "forged.example",
        "HTTP_X_FORWARDED_PORT": "443",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_PROTOCOL": "ssl",
        "HTTP_X_FORWARDED_SSL": "on",
        "HTTP_X_FORWARDED_PREFIX": "/forged",
        "HTTP_FORWARDED": "for=198.51.100.1;proto=https",
        "HTTP_X_REAL_IP": "198.51.100.1",
    }, env


# --------------------------------------------------------------------------- forwarded_allow_ips


def scheme_from(server: WsgidServer, source: str) -> str | None:
    """The scheme of a request saying `X-Forwarded-Proto: https` from `source`."""
    env = ask(server, "X-Forwarded-Proto: https", source=source)
    assert env["REMOTE_ADDR"] == source, env
    return env["wsgi.url_scheme"]


@kinds
def test_forwarded_allow_ips_environment_variable_honoured(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """$FORWARDED_ALLOW_IPS replaces the default: 127.0.0.2 is believed, 127.0.0.1 is not."""
    server = serve(wsgid, kind, env={"FORWARDED_ALLOW_IPS": UNTRUSTED})
    assert scheme_from(server, UNTRUSTED) == "https"
    assert scheme_from(server, "127.0.0.1") == "http"


@kinds
def test_forwarded_allow_ips_star_trusts_any_peer(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--forwarded-allow-ips", "*")
    assert scheme_from(server, UNTRUSTED) == "https"
    assert scheme_from(server, "127.0.0.1") == "https"


@kinds
def test_forwarded_allow_ips_cidr(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = serve(wsgid, kind, "--forwarded-allow-ips", "127.0.0.0/30")
    assert scheme_from(server, UNTRUSTED) == "https"  # 127.0.0.0 to 127.0.0.3
    assert scheme_from(server, "127.0.0.5") == "http"


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


@kinds
def test_ipv6_loopback_listener_trusted_by_default(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    port = free_ipv6_port()
    serve(wsgid, kind, "--bind", f"[::1]:{port}")
    sock = socket.create_connection(("::1", port), timeout=10)
    with RawConnection(sock) as conn:
        env = seen(conn, head("/", "X-Forwarded-Proto: https"))
    assert env["REMOTE_ADDR"] == "::1", env
    assert env["wsgi.url_scheme"] == "https", env


# --------------------------------------------------------------------------- nothing added

# Plain requests as clients write them, and the HTTP_* keys the environ must hold: exactly
# the client's fields (repeated ones joined; a name with "_" left out by default), nothing
# wsgid made up (HTTP_X_REQUEST_ID, say).
PLAIN = {
    "wrk": (
        b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
        {"HTTP_HOST": "127.0.0.1:8000"},
    ),
    "browser": (
        b"POST /login?next=/ HTTP/1.1\r\n"
        b"Host: shop.example\r\n"
        b"Connection: keep-alive\r\n"
        b"Content-Length: 7\r\n"
        b"Cache-Control: max-age=0\r\n"
        b'sec-ch-ua: "Chromium";v="124"\r\n'
        b"Upgrade-Insecure-Requests: 1\r\n"
        b"Origin: https://shop.example\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        b"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
        b"Sec-Fetch-Mode: navigate\r\n"
        b"Referer: https://shop.example/login\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"Accept-Language: en-GB,en;q=0.9\r\n"
        b"Cookie: session=abc; theme=dark\r\n"
        b"\r\n"
        b"user=me",
        {
            "HTTP_HOST": "shop.example",
            "HTTP_CONNECTION": "keep-alive",
            "HTTP_CACHE_CONTROL": "max-age=0",
            "HTTP_SEC_CH_UA": '"Chromium";v="124"',
            "HTTP_UPGRADE_INSECURE_REQUESTS": "1",
            "HTTP_ORIGIN": "https://shop.example",
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64)",
            "HTTP_ACCEPT": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
            "HTTP_SEC_FETCH_MODE": "navigate",
            "HTTP_REFERER": "https://shop.example/login",
            "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
            "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9",
            "HTTP_COOKIE": "session=abc; theme=dark",
        },
    ),
    "repeated": (
        b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nCookie: a=1\r\n"
        b"X-Trace: one\r\nAccept: */*\r\nCookie: b=2\r\nX-Trace: two\r\nX-Trace: three\r\n\r\n",
        {
            "HTTP_HOST": "t",
            "HTTP_ACCEPT": "text/html, */*",
            "HTTP_COOKIE": "a=1; b=2",
            "HTTP_X_TRACE": "one, two, three",
        },
    ),
    "underscore": (
        b"GET / HTTP/1.1\r\nHost: t\r\nX_Custom_Header: forged\r\nX-Custom-Header: real\r\n"
        b"Accept: */*\r\n\r\n",
        {"HTTP_HOST": "t", "HTTP_X_CUSTOM_HEADER": "real", "HTTP_ACCEPT": "*/*"},
    ),
}


@kinds
@pytest.mark.parametrize("case", sorted(PLAIN))
def test_plain_request_environ_http_keys_are_exactly_the_client_headers(
    wsgid: Callable[..., WsgidServer], kind: str, case: str
) -> None:
    request, expected = PLAIN[case]
    server = serve(wsgid, kind)
    with server.raw() as conn:
        env = seen(conn, request)
    assert http_fields(env) == expected, env
    assert env["wsgi.url_scheme"] == "http", env


# --------------------------------------------------------------------- what the environ names


@kinds
def test_a_unix_socket_listener_names_the_server_by_host(
    wsgid: Callable[..., WsgidServer], kind: str, workdir: WorkDir
) -> None:
    """A UNIX socket has no address: SERVER_NAME and SERVER_PORT come from Host, as in
    gunicorn, and SERVER_PORT is never empty (PEP 3333; Django's get_port)."""
    path = workdir.root / "app.sock"
    serve(wsgid, kind, "--bind", f"unix:{path}")
    for fields, named in (
        (("Host: example.com:8080",), ("example.com", "8080")),
        (("Host: example.com",), ("example.com", "80")),
        (("Host: example.com", "X-Forwarded-Proto: https"), ("example.com", "443")),
        (("Host: [::1]:9000",), ("[::1]", "9000")),
    ):
        request = "\r\n".join(("GET / HTTP/1.1", *fields, "", "")).encode()
        with RawConnection.unix(path) as conn:
            env = seen(conn, request)
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == named, (fields, env)


@kinds
def test_script_name_from_the_environment_is_cut_at_a_path_segment(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """`-e SCRIPT_NAME=/app`: /app and /app/x are under it; /application and /other are not,
    and are served at the root, never with a PATH_INFO that does not begin with /."""
    server = serve(wsgid, kind, "--env", "SCRIPT_NAME=/app")
    for path, split in (
        ("/app/x", ("/app", "/x")),
        ("/app", ("/app", "")),
        ("/application", ("", "/application")),
        ("/other", ("", "/other")),
    ):
        env = ask(server, path=path)
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == split, (path, env)
