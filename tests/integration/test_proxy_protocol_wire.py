"""PROXY protocol headers through real wsgid processes of every worker kind, byte for byte.

Headers are built by hand (HAProxy's proxy-protocol.txt) and written on raw sockets to
`proxy_echo_app`, which answers with what the environ says. Covered: what the header does to
the environ (v2 LOCAL keeps the peer, a TCP6 client, the SSL TLV's client bit, v1 and v2 over
keep-alive, whose forwarded headers count behind it: the client's, judged on its own address),
how it may arrive (a byte per send; with the first request in one send), what is
refused (no header: 400; a peer off proxy_allow_ips: 403 before a byte is read; a stalled
header: 408), and which listeners require it (proxy_protocol_binds, proxy_protocol_optional,
a UNIX socket, whose peers are always allowed).

The PROXY parser on its own is tested in tests/unit/test_proxy_protocol.py; wsgid behind
real HAProxy and nginx in test_behind_proxy_*.py.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable

import pytest

from support.client import RawConnection
from support.echo import ECHO_APP, Seen, head, refused, seen
from support.kinds import WORKER_KINDS, kind_args
from support.server import WorkDir, WsgidServer, free_port

kinds = pytest.mark.parametrize("kind", WORKER_KINDS)

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LOCAL, PROXY = 0x0, 0x1  # v2 commands
UNSPEC, TCP4, TCP6 = 0x00, 0x11, 0x21  # v2 address families and transports
PP2_TYPE_SSL, PP2_CLIENT_SSL = 0x20, 0x01

CLIENT = ("203.0.113.7", 40123)  # the client a proxy in front of wsgid saw
DESTINATION = ("192.0.2.10", 443)  # the address the client connected to


def v2(command: int, family: int, block: bytes = b"") -> bytes:
    """A v2 header: signature, version 2 and `command`, `family`, the length, `block`."""
    return V2_SIGNATURE + bytes([0x20 | command, family]) + len(block).to_bytes(2, "big") + block


def v2_proxy(
    client: tuple[str, int] = CLIENT,
    destination: tuple[str, int] = DESTINATION,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 PROXY header for a TCP client over IPv4 or IPv6 (by the addresses' kind)."""
    source, target = ipaddress.ip_address(client[0]), ipaddress.ip_address(destination[0])
    family = TCP4 if source.version == 4 else TCP6
    ports = client[1].to_bytes(2, "big") + destination[1].to_bytes(2, "big")
    return v2(PROXY, family, source.packed + target.packed + ports + tlvs)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def ssl_tlv(client_bits: int) -> bytes:
    """PP2_TYPE_SSL: the client byte, then verify (0: the client's certificate was verified)."""
    return tlv(PP2_TYPE_SSL, bytes([client_bits]) + bytes(4))


def v1_proxy(client: tuple[str, int] = CLIENT, destination: tuple[str, int] = DESTINATION) -> bytes:
    return b"PROXY TCP4 %s %s %d %d\r\n" % (
        client[0].encode(), destination[0].encode(), client[1], destination[1],
    )  # fmt: skip


def serve(wsgid: Callable[..., WsgidServer], kind: str, *args: str) -> WsgidServer:
    """wsgid with `args`; every listener requires the header unless they say otherwise.

    The harness's readiness probe (a plain GET) is answered by wsgid itself (400 on a PROXY
    listener), which is all the probe needs.
    """
    return wsgid(ECHO_APP, *kind_args(kind), *args, workers=1)


def local_port(conn: RawConnection) -> int:
    return int(conn.sock.getsockname()[1])


def assert_client(env: Seen, version: str, tcp_port: int) -> None:
    """The header's client is REMOTE_ADDR; the TCP peer (this test) is in wsgid.peer_*."""
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (CLIENT[0], str(CLIENT[1])), env
    assert (env["wsgid.peer_addr"], env["wsgid.peer_port"]) == ("127.0.0.1", str(tcp_port)), env
    assert env["wsgid.proxy_protocol"] == version, env


# --------------------------------------------------------------------------- what it says


@kinds
def test_proxy_v2_local_keeps_peer(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    """LOCAL (a proxy's own health check) names no client: the TCP peer stays."""
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    with server.raw() as conn:
        env = seen(conn, v2(LOCAL, UNSPEC) + head())
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("127.0.0.1", str(local_port(conn)))
    assert env["wsgid.proxy_protocol"] == "v2", env
    assert "wsgid.peer_addr" not in env, env
    assert env["wsgi.url_scheme"] == "http", env


@kinds
def test_proxy_v2_tcp6_client(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    header = v2_proxy(("2001:db8::5", 51000), ("2001:db8::10", 443))
    with server.raw() as conn:
        env = seen(conn, header + head())
        assert (env["wsgid.peer_addr"], env["wsgid.peer_port"]) == (
            "127.0.0.1", str(local_port(conn)),
        )  # fmt: skip
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::5", "51000"), env
    assert env["wsgid.proxy_protocol"] == "v2", env


@kinds
def test_proxy_v2_ssl_tlv_client_bit_sets_https(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """The SSL TLV with PP2_CLIENT_SSL: the client used TLS. Without the bit it did not."""
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    with server.raw() as conn:
        tls = seen(conn, v2_proxy(tlvs=ssl_tlv(PP2_CLIENT_SSL)) + head())
    with server.raw() as conn:
        plain = seen(conn, v2_proxy(tlvs=ssl_tlv(0)) + head())
    assert tls["wsgi.url_scheme"] == "https", tls
    assert tls["REMOTE_ADDR"] == CLIENT[0], tls
    assert plain["wsgi.url_scheme"] == "http", plain


# --------------------------------------------------------------------------- how it arrives


@kinds
def test_proxy_v2_header_split_byte_by_byte(wsgid: Callable[..., WsgidServer], kind: str) -> None:
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    with server.raw() as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a segment per byte
        header = v2_proxy(tlvs=ssl_tlv(PP2_CLIENT_SSL))
        for i in range(len(header)):
            conn.send(header[i : i + 1])
        env = seen(conn, head())
        assert_client(env, "v2", local_port(conn))
    assert env["wsgi.url_scheme"] == "https", env


@kinds
def test_proxy_v2_header_and_first_request_in_one_send(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    with server.raw() as conn:
        env = seen(conn, v2_proxy() + head("/first"))
        assert_client(env, "v2", local_port(conn))
    assert env["PATH_INFO"] == "/first", env


@kinds
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_keepalive_three_requests_each_see_client(
    wsgid: Callable[..., WsgidServer], kind: str, version: str
) -> None:
    """The header's client is the connection's: every request on it is the client's."""
    server = serve(wsgid, kind, "--proxy-protocol", version)
    header = v1_proxy() if version == "v1" else v2_proxy()
    with server.raw() as conn:
        conn.send(header)
        answers = [seen(conn, head(f"/{n}")) for n in range(3)]
        for n, env in enumerate(answers):
            assert_client(env, version, local_port(conn))
            assert env["PATH_INFO"] == f"/{n}", env


@kinds
def test_proxy_client_behind_an_l4_proxy_cannot_speak_for_the_trusted_proxy(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """HAProxy on loopback (trusted) passes an internet client's bytes through untouched: that
    client's X-Forwarded-* and X-Request-ID are judged on its own address, so not believed."""
    server = serve(wsgid, kind, "--proxy-protocol", "v1", "--remote-addr-from", "x-forwarded-for")
    spoofed = head(
        "/", "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https", "X-Request-ID: evil"
    )
    with server.raw() as conn:
        conn.send(v1_proxy())
        env = seen(conn, spoofed)
        assert_client(env, "v1", local_port(conn))
    assert env["wsgi.url_scheme"] == "http", env
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_FORWARDED_PROTO" not in env, env
    assert env["wsgid.request_id"] != "evil" and env["HTTP_X_REQUEST_ID"] == "evil", env


@kinds
def test_proxy_client_on_forwarded_allow_ips_is_believed(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """An L7 proxy (say a cloud load balancer at 203.0.113.7) behind an L4 one: its headers
    count when its address, the one the PROXY header names, is trusted."""
    server = serve(wsgid, kind, "--proxy-protocol", "v2", "--remote-addr-from", "x-forwarded-for",
                   "--forwarded-allow-ips", f"127.0.0.1,{CLIENT[0]}")  # fmt: skip
    with server.raw() as conn:
        conn.send(v2_proxy())
        env = seen(conn, head("/", "X-Forwarded-For: 198.51.100.4", "X-Forwarded-Proto: https"))
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("198.51.100.4", "https"), env
    assert env["wsgid.peer_addr"] == "127.0.0.1", env


# --------------------------------------------------------------------------- what is refused


@kinds
def test_proxy_header_missing_400_and_close_app_not_called(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """A plain request on a PROXY listener: wsgid's 400, and neither it nor the request
    pipelined after it reaches the app."""
    server = serve(wsgid, kind, "--proxy-protocol", "v2")
    with server.raw() as conn:
        refused(conn, head("/plain") + head("/second"), 400)


@kinds
def test_proxy_peer_off_proxy_allow_ips_403_before_any_header(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """From 127.0.0.2, off the list: 403 and closed without a byte sent, so before any header
    could be read. From 127.0.0.1, on it, the same header is taken."""
    server = serve(wsgid, kind, "--proxy-protocol", "v2", "--proxy-allow-from", "127.0.0.1")
    with server.raw(source="127.0.0.2") as conn:
        refused(conn, b"", 403)
    with server.raw() as conn:
        assert_client(seen(conn, v2_proxy() + head()), "v2", local_port(conn))


@kinds
def test_proxy_header_stalled_408_after_header_timeout(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--proxy-protocol", "v2", "--header-timeout", "1")
    with server.raw(timeout=10) as conn:
        started = time.monotonic()
        conn.send(v2_proxy()[:20])  # the signature and part of the rest: then nothing
        refused(conn, b"", 408)  # waits for it (the socket's 10 s timeout is the deadline)
        waited = time.monotonic() - started
    assert 0.9 <= waited < 8, f"408 after {waited:.2f}s with header_timeout = 1"


# --------------------------------------------------------------------------- which listeners


@kinds
def test_proxy_protocol_binds_one_proxy_listener_one_plain(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    """Only the listener named in proxy_protocol_binds requires the header; the other one
    (the harness's) is plain HTTP, where a PROXY header is just a malformed request."""
    port = free_port()
    proxied = f"127.0.0.1:{port}"
    server = serve(
        wsgid, kind, "--bind", proxied, "--proxy-protocol", "v2",
        "--proxy-protocol-binds", proxied,
    )  # fmt: skip
    with RawConnection(socket.create_connection(("127.0.0.1", port), timeout=10)) as conn:
        assert_client(seen(conn, v2_proxy() + head()), "v2", local_port(conn))
    with RawConnection(socket.create_connection(("127.0.0.1", port), timeout=10)) as conn:
        refused(conn, head(), 400)
    with server.raw() as conn:
        plain = seen(conn, head())
        assert (plain["REMOTE_ADDR"], plain["REMOTE_PORT"]) == ("127.0.0.1", str(local_port(conn)))
    assert "wsgid.proxy_protocol" not in plain, plain
    with server.raw() as conn:
        refused(conn, v2_proxy() + head(), 400)


@kinds
def test_proxy_protocol_optional_serves_plain_and_takes_header(
    wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    server = serve(wsgid, kind, "--proxy-protocol", "v2", "--proxy-protocol-optional")
    with server.raw() as conn:
        plain = seen(conn, head())
        assert (plain["REMOTE_ADDR"], plain["REMOTE_PORT"]) == ("127.0.0.1", str(local_port(conn)))
    assert "wsgid.proxy_protocol" not in plain, plain
    with server.raw() as conn:
        assert_client(seen(conn, v2_proxy() + head()), "v2", local_port(conn))


@kinds
def test_proxy_unix_socket_listener_peers_always_allowed(
    wsgid: Callable[..., WsgidServer], kind: str, workdir: WorkDir
) -> None:
    """proxy_allow_ips names no loopback address, yet a UNIX-socket peer may send the header."""
    path = workdir.root / "proxied.sock"
    unix = f"unix:{path}"
    serve(
        wsgid, kind, "--bind", unix, "--proxy-protocol", "v2", "--proxy-protocol-binds", unix,
        "--proxy-allow-from", "192.0.2.1",
    )  # fmt: skip
    with RawConnection.unix(path) as conn:
        env = seen(conn, v2_proxy() + head())
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (CLIENT[0], str(CLIENT[1])), env
    assert env["wsgid.proxy_protocol"] == "v2", env
    with RawConnection.unix(path) as conn:
        refused(conn, head(), 400)  # the header is still required there
