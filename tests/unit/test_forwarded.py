"""Forwarded headers in process: what a trusted peer may say, what nobody else may.

The parser applies its connection's rules (`forwarded.Forwarding.rules(peer)`) to each head;
`environ.build` then shows the result. The wire-level versions of these cases run against real
servers in tests/integration/test_forwarded_headers.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from wsgid.http import forwarded
from wsgid.http.allowlist import AllowList, parse_entry
from wsgid.http.body import EMPTY_INPUT
from wsgid.http.environ import build, connection_base
from wsgid.http.errors import BadRequest, ProtocolError
from wsgid.http.parser import Limits, RequestParser
from wsgid.http.request import Request

GUNICORN_SCHEMES = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}
TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"


def forwarding(**overrides: Any) -> forwarded.Forwarding:
    options: dict[str, Any] = {
        "allow": AllowList(["127.0.0.1", "::1"]),
        "scheme_headers": GUNICORN_SCHEMES,
        "forwarder_headers": ("SCRIPT_NAME", "PATH_INFO"),
        "clear_untrusted": True,
        "remote_addr_from": "peer",
        "request_id_header": "X-Request-ID",
    }
    options.update(overrides)
    return forwarded.Forwarding(**options)


def limits(
    header_map: str = "drop", forwarder: tuple[str, ...] = ("SCRIPT_NAME", "PATH_INFO")
) -> Limits:
    schemes = {forwarded.environ_key(n) for n in GUNICORN_SCHEMES}
    return Limits(
        header_map=header_map,  # type: ignore[arg-type]
        forwarder=frozenset(forwarder),
        protected=forwarded.REMOVED | schemes,
    )


def environ_of(
    fields: bytes,
    peer: str = TRUSTED,
    target: bytes = b"/app/page",
    rules: forwarded.Forwarding | None = None,
    lim: Limits | None = None,
) -> tuple[dict[str, Any], Request]:
    parser = RequestParser(lim or limits(), (rules or forwarding()).rules(peer))
    parser.feed(b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (target, fields))
    req = parser.ready.popleft()
    base = connection_base(
        server=("h", "80"), peer=(peer, "4000"), url_scheme="http", multithread=False
    )
    return build(base, req, EMPTY_INPUT), req


def refused(fields: bytes, peer: str = TRUSTED, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        environ_of(fields, peer, **kw)
    return info.value


# --- allow-lists -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "address", "allowed"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["127.0.0.0/30"], "127.0.0.3", True),
        (["127.0.0.0/30"], "127.0.0.4", False),
        (["::1"], "::1", True),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # a dual-stack listener's IPv4 peer
        (["fe80::/10"], "fe80::1%eth0", True),
        (["*"], "203.0.113.9", True),
        ([], "", True),  # a UNIX-socket peer
        (["127.0.0.1"], "not-an-address", False),
    ],
)
def test_allow_list_answers_for_ips_networks_anyone_and_unix_peers(
    entries: list[str], address: str, allowed: bool
) -> None:
    allow = AllowList(entries)
    assert allow.allows(address) is allowed
    assert allow.allows(address) is allowed  # and again, from its table


def test_allow_list_entry_with_host_bits_names_both_fixes() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/8 or the address alone as 10\.0\.0\.1"):
        parse_entry("10.0.0.1/8")
    with pytest.raises(ValueError, match="not an IP address, a CIDR network"):
        parse_entry("localhost")


# --- scheme headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "scheme"),
    [
        (b"X-Forwarded-Proto: https\r\n", "https"),
        (b"X-Forwarded-Proto: http\r\n", "http"),
        (b"X-Forwarded-Proto: HTTPS\r\n", "http"),  # compared exactly, as gunicorn does
        (b"X-Forwarded-Ssl: on\r\nX-Forwarded-Proto: https\r\n", "https"),
        (b"", "http"),
    ],
)
def test_trusted_scheme_headers_set_the_url_scheme(fields: bytes, scheme: str) -> None:
    env, _ = environ_of(fields)
    assert env["wsgi.url_scheme"] == scheme


def test_contradictory_scheme_headers_are_refused_with_400() -> None:
    error = refused(b"X-Forwarded-Proto: https\r\nX-Forwarded-Protocol: http\r\n")
    assert isinstance(error, BadRequest) and "contradictory" in error.reason


def test_untrusted_scheme_headers_change_nothing_and_leave_the_environ() -> None:
    env, _ = environ_of(
        b"X-Forwarded-Proto: https\r\nX-Real-IP: 1.2.3.4\r\nX-Other: 1\r\n", UNTRUSTED
    )
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_PROTO" not in env and "HTTP_X_REAL_IP" not in env
    assert env["HTTP_X_OTHER"] == "1"


def test_untrusted_forwarded_headers_stay_unbelieved_when_clearing_is_off() -> None:
    rules = forwarding(clear_untrusted=False)
    env, _ = environ_of(b"X-Forwarded-Proto: https\r\n", UNTRUSTED, rules=rules)
    assert env["wsgi.url_scheme"] == "http" and env["HTTP_X_FORWARDED_PROTO"] == "https"


@pytest.mark.parametrize("header_map", ["drop", "dangerous"])
def test_an_underscore_twin_of_a_scheme_header_is_never_trusted(header_map: str) -> None:
    env, _ = environ_of(b"X_Forwarded_Proto: https\r\n", lim=limits(header_map))
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_PROTO" not in env


def test_dangerous_mode_still_maps_other_underscore_names() -> None:
    env, _ = environ_of(b"X_Custom: 1\r\n", lim=limits("dangerous"))
    assert env["HTTP_X_CUSTOM"] == "1"


# --- forwarder headers -------------------------------------------------------------------


def test_trusted_script_name_moves_the_prefix_out_of_path_info() -> None:
    env, _ = environ_of(b"SCRIPT_NAME: /app\r\n")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/page")


def test_trusted_script_name_outside_the_path_is_refused() -> None:
    assert refused(b"Script_Name: /other\r\n").status == 400
    assert refused(b"Script_Name: /ap\r\n").status == 400  # a prefix of a segment is not one


def test_untrusted_script_name_never_reaches_the_environ() -> None:
    env, _ = environ_of(b"SCRIPT_NAME: /app\r\nPATH_INFO: /admin\r\n", UNTRUSTED)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/app/page")
    assert not [k for k in env if "SCRIPT" in k and k != "SCRIPT_NAME"]


def test_remote_user_only_when_listed() -> None:
    env, _ = environ_of(b"REMOTE_USER: alice\r\n")
    assert "REMOTE_USER" not in env
    lim = limits(forwarder=("REMOTE_USER",))
    env, _ = environ_of(
        b"REMOTE_USER: alice\r\n", rules=forwarding(forwarder_headers=("REMOTE_USER",)), lim=lim
    )
    assert env["REMOTE_USER"] == "alice"


def test_a_repeated_forwarder_header_is_refused() -> None:
    assert refused(b"SCRIPT_NAME: /app\r\nScript_Name: /evil\r\n").status == 400


# --- the client's address ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "address", "port"),
    [
        # the rightmost hop off the list is the client; the client-written leftmost is not
        (b"X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n", "203.0.113.7", ""),
        # over every field line, joined in order
        (
            b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n",
            "203.0.113.7",
            "",
        ),
        # every hop trusted: the leftmost
        (b"X-Forwarded-For: 127.0.0.1, ::1\r\n", "127.0.0.1", ""),
        (b"X-Forwarded-For: 203.0.113.7:5555\r\n", "203.0.113.7", "5555"),
        (b"X-Forwarded-For: [2001:db8::1]:443\r\n", "2001:db8::1", "443"),
    ],
)
def test_x_forwarded_for_gives_the_rightmost_untrusted_hop(
    fields: bytes, address: str, port: str
) -> None:
    env, _ = environ_of(fields, rules=forwarding(remote_addr_from="x-forwarded-for"))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (address, port)
    assert (env["wsgid.peer_addr"], env["wsgid.peer_port"]) == (TRUSTED, "4000")


@pytest.mark.parametrize(
    ("allowed", "value", "address"),
    [
        # `*` trusts the peer, never a hop: the client is the hop the peer added, whatever
        # the client wrote before it (it was 6.6.6.6, the leftmost, every hop being "on").
        (["*"], b"6.6.6.6, 127.0.0.2", "127.0.0.2"),
        (["*"], b"6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # with networks too, proxies on them are skipped as before
        (["*", "10.0.0.0/8"], b"6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
    ],
)
def test_a_wildcard_allow_list_trusts_the_peer_and_no_hop(
    allowed: list[str], value: bytes, address: str
) -> None:
    rules = forwarding(allow=AllowList(allowed), remote_addr_from="x-forwarded-for")
    env, _ = environ_of(b"X-Forwarded-For: %s\r\n" % value, peer="192.0.2.9", rules=rules)
    assert env["REMOTE_ADDR"] == address
    env, _ = environ_of(
        b"Forwarded: for=6.6.6.6, for=%s\r\n" % address.encode(),
        peer="192.0.2.9",
        rules=forwarding(allow=AllowList(allowed), remote_addr_from="forwarded"),
    )
    assert env["REMOTE_ADDR"] == address


def test_an_ipv4_address_in_ipv6_form_keeps_its_dotted_quad() -> None:
    env, _ = environ_of(
        b"X-Forwarded-For: ::ffff:1.2.3.4\r\n", rules=forwarding(remote_addr_from="x-forwarded-for")
    )
    assert env["REMOTE_ADDR"] == "::ffff:1.2.3.4"  # not Python 3.11's ::ffff:102:304


@pytest.mark.parametrize(
    "value", [b"unknown", b"203.0.113.7, garbage", b"", b"1.2.3.4:99999", b"fe80::1%eth0"]
)
def test_an_unusable_hop_keeps_the_tcp_peer(value: bytes) -> None:
    env, _ = environ_of(
        b"X-Forwarded-For: %s\r\n" % value, rules=forwarding(remote_addr_from="x-forwarded-for")
    )
    assert env["REMOTE_ADDR"] == TRUSTED and "wsgid.peer_addr" not in env


def test_x_forwarded_for_is_not_read_unless_asked() -> None:
    env, _ = environ_of(b"X-Forwarded-For: 203.0.113.7\r\n")
    assert env["REMOTE_ADDR"] == TRUSTED and env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    env, _ = environ_of(
        b"X-Forwarded-For: 203.0.113.7\r\n",
        UNTRUSTED,
        rules=forwarding(remote_addr_from="x-forwarded-for"),
    )
    assert env["REMOTE_ADDR"] == UNTRUSTED and "HTTP_X_FORWARDED_FOR" not in env


@pytest.mark.parametrize(
    ("value", "address", "port", "scheme"),
    [
        (b'for="[2001:db8::1]:4711";proto=https', "2001:db8::1", "4711", "https"),
        (b"for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60", "", "http"),
        (b"For=6.6.6.6, for=198.51.100.17;PROTO=https", "198.51.100.17", "", "https"),
        (b'for=198.51.100.17;host="a;b,c", for=127.0.0.1', "198.51.100.17", "", "http"),
    ],
)
def test_forwarded_gives_the_rightmost_untrusted_hop_and_its_scheme(
    value: bytes, address: str, port: str, scheme: str
) -> None:
    env, _ = environ_of(
        b"Forwarded: %s\r\n" % value, rules=forwarding(remote_addr_from="forwarded")
    )
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == (
        address,
        port,
        scheme,
    )


@pytest.mark.parametrize(
    "value", [b"for=unknown", b"for=_hidden", b"for", b'for="unterminated', b"proto=https"]
)
def test_a_forwarded_value_without_a_usable_client_keeps_the_peer(value: bytes) -> None:
    env, _ = environ_of(
        b"Forwarded: %s\r\n" % value, rules=forwarding(remote_addr_from="forwarded")
    )
    assert env["REMOTE_ADDR"] == TRUSTED


# --- request ids and the environ ---------------------------------------------------------


def test_a_trusted_request_id_is_offered_for_adoption() -> None:
    _, req = environ_of(b"X-Request-ID: abc-1\r\n")
    assert req.incoming_id == "abc-1"


def test_an_untrusted_request_id_is_left_alone() -> None:
    env, req = environ_of(b"X-Request-ID: abc-1\r\n", UNTRUSTED)
    assert req.incoming_id is None and env["HTTP_X_REQUEST_ID"] == "abc-1"


def test_no_request_id_header_setting_adopts_nothing() -> None:
    _, req = environ_of(b"X-Request-ID: abc-1\r\n", rules=forwarding(request_id_header=""))
    assert req.incoming_id is None


@pytest.mark.parametrize("peer", [TRUSTED, UNTRUSTED])
def test_the_environ_holds_exactly_the_client_s_headers(peer: str) -> None:
    env, _ = environ_of(b"Accept: */*\r\nUser-Agent: t\r\nAccept: text/html\r\nX_Odd: 1\r\n", peer)
    assert {k: v for k, v in env.items() if k.startswith("HTTP_")} == {
        "HTTP_HOST": "h",
        "HTTP_ACCEPT": "*/*, text/html",
        "HTTP_USER_AGENT": "t",
    }


# --- repeated lines and a second say on the scheme ---------------------------------------


@pytest.mark.parametrize(
    ("fields", "scheme"),
    [
        (b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n", "https"),
        # one line with a comma is one value, as gunicorn reads it
        (b"X-Forwarded-Proto: https, http\r\n", "http"),
    ],
)
def test_scheme_header_lines_are_judged_one_by_one(fields: bytes, scheme: str) -> None:
    env, _ = environ_of(fields)
    assert env["wsgi.url_scheme"] == scheme


def test_repeated_scheme_header_lines_that_disagree_are_refused() -> None:
    assert refused(b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n").status == 400


def test_a_forwarded_proto_that_contradicts_a_scheme_header_is_refused() -> None:
    fields = b"Forwarded: for=198.51.100.3;proto=https\r\nX-Forwarded-Proto: http\r\n"
    assert refused(fields, rules=forwarding(remote_addr_from="forwarded")).status == 400
