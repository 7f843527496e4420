"""`ProxyHeaderReader` on its own: PROXY protocol v1 and v2 headers (HAProxy's
proxy-protocol.txt) built here byte by byte, read whole and one byte at a time, with the HTTP
bytes that follow handed back exactly; every refusal is a 400 at the first byte that decides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import ip_address

import pytest

from wsgid.http.errors import ProtocolError
from wsgid.http.proxy_protocol import Mode, ProxyHeaderReader, ProxyInfo

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

# ---------------------------------------------------------------- frame builders (the spec's
# layout, written out here rather than taken from the module under test)

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LOCAL = 0x20  # version 2, command LOCAL
PROXY = 0x21  # version 2, command PROXY
UNSPEC, TCP4, UDP4, TCP6, UDP6, UNIX_STREAM, UNIX_DGRAM = 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32
ALPN, AUTHORITY, NOOP, UNIQUE_ID, SSL, SSL_VERSION, NETNS = 0x01, 0x02, 0x04, 0x05, 0x20, 0x21, 0x30


def v2(
    payload: bytes = b"", *, ver_cmd: int = PROXY, family: int = TCP4, length: int | None = None
) -> bytes:
    """A v2 header: signature, version and command, family, length (that of `payload`
    unless given), payload."""
    size = len(payload) if length is None else length
    return V2_SIGNATURE + bytes([ver_cmd, family]) + size.to_bytes(2, "big") + payload


def inet(source: str, destination: str, sport: int, dport: int) -> bytes:
    """An INET or INET6 address block: both addresses, then both ports."""
    return (
        ip_address(source).packed
        + ip_address(destination).packed
        + sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
    )


def unix(source: bytes, destination: bytes) -> bytes:
    """A UNIX address block: two 108-byte, NUL-padded paths."""
    return source.ljust(108, b"\0") + destination.ljust(108, b"\0")


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def ssl(client: int, verify: int = 0, sub: bytes = b"") -> bytes:
    """A PP2_TYPE_SSL TLV: client flags (u8), verify result (u32), sub-TLVs."""
    return tlv(SSL, bytes([client]) + verify.to_bytes(4, "big") + sub)


def info(
    version: str,
    client: tuple[str, int] | None = None,
    destination: tuple[str, int] | None = None,
    tls: bool = False,
    tlvs: Mapping[int, bytes] | None = None,
) -> ProxyInfo:
    return ProxyInfo(version, client, destination, tls, tlvs or {})


# ---------------------------------------------------------------- feeding


def read_whole(mode: Mode, data: bytes, optional: bool = False) -> tuple[ProxyInfo | None, bytes]:
    result = ProxyHeaderReader(mode, optional).feed(data)
    assert result is not None
    assert type(result[1]) is bytes
    return result


def read_byte_by_byte(
    mode: Mode, header: bytes, after: bytes, optional: bool = False
) -> tuple[ProxyInfo | None, bytes]:
    """Feed `header` one byte at a time, its last byte together with `after`: no result before."""
    reader = ProxyHeaderReader(mode, optional)
    for i in range(len(header) - 1):
        assert reader.feed(header[i : i + 1]) is None, f"a result after {i + 1} bytes"
    result = reader.feed(header[-1:] + after)
    assert result is not None
    assert type(result[1]) is bytes
    return result


def refused_at(mode: Mode, data: bytes, optional: bool = False) -> tuple[int, str, int]:
    """Feed `data` one byte at a time: (status, reason, bytes fed when refused). Fed whole, it
    is refused for the same reason."""
    with pytest.raises(ProtocolError) as whole:
        ProxyHeaderReader(mode, optional).feed(data)
    reader = ProxyHeaderReader(mode, optional)
    for fed in range(1, len(data) + 1):
        try:
            result = reader.feed(data[fed - 1 : fed])
        except ProtocolError as refused:
            assert refused.reason == whole.value.reason
            return refused.status, refused.reason, fed
        assert result is None, f"a result after {fed} bytes"
    raise AssertionError("not refused byte by byte")


# ---------------------------------------------------------------- valid headers

TCP4_BLOCK = inet("192.0.2.1", "198.51.100.7", 56324, 443)
TCP6_BLOCK = inet("2001:db8::1", "::1", 40000, 8443)
TCP4_PEERS = (("192.0.2.1", 56324), ("198.51.100.7", 443))  # (client, destination)
V1_TCP4 = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"
V2_TCP4 = v2(TCP4_BLOCK, family=TCP4)
UNIX_BLOCK = unix(b"/run/haproxy.sock", b"/run/wsgid.sock")
UNIQUE = bytes(range(32))

V1_TCP6_LONGEST = (
    b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    b" 65535 65535\r\n"
)
FFFF = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

V1_VALID = [
    pytest.param(V1_TCP4, info("v1", *TCP4_PEERS), id="v1_tcp4"),
    pytest.param(
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        info("v1", ("0.0.0.0", 0), ("255.255.255.255", 65535)),
        id="v1_tcp4_port_bounds",
    ),
    pytest.param(
        b"PROXY TCP6 2001:db8::1 ::1 65535 80\r\n",
        info("v1", ("2001:db8::1", 65535), ("::1", 80)),
        id="v1_tcp6",
    ),
    pytest.param(
        b"PROXY TCP6 2001:0db8:0000:0000:0000:0000:0000:0001 0:0:0:0:0:0:0:1 1 2\r\n",
        info("v1", ("2001:db8::1", 1), ("::1", 2)),
        id="v1_tcp6_addresses_compressed",
    ),
    pytest.param(
        b"PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 1 2\r\n",
        # the dotted quad kept, as gunicorn and the kernel write it (not ::ffff:c000:201)
        info("v1", ("::ffff:192.0.2.1", 1), ("::ffff:192.0.2.2", 2)),
        id="v1_tcp6_ipv4_mapped",
    ),
    pytest.param(V1_TCP6_LONGEST, info("v1", (FFFF, 65535), (FFFF, 65535)), id="v1_tcp6_longest"),
    pytest.param(b"PROXY UNKNOWN\r\n", info("v1"), id="v1_unknown_bare"),
    pytest.param(
        b"PROXY UNKNOWN 192.168.0.1 10.0.0.2 56324 443\r\n",
        info("v1"),
        id="v1_unknown_with_addresses",
    ),
    pytest.param(
        b"PROXY UNKNOWN " + V1_TCP6_LONGEST[11:], info("v1"), id="v1_unknown_with_tcp6_addresses"
    ),
    pytest.param(
        b"PROXY UNKNOWN anything at all, ignored\r\n", info("v1"), id="v1_unknown_with_any_text"
    ),
    pytest.param(
        b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n", info("v1"), id="v1_line_of_107_bytes_accepted"
    ),
]

V2_VALID = [
    pytest.param(v2(ver_cmd=LOCAL, family=UNSPEC), info("v2"), id="v2_local_keeps_peer"),
    pytest.param(
        v2(TCP4_BLOCK, ver_cmd=LOCAL, family=TCP4), info("v2"), id="v2_local_ignores_addresses"
    ),
    pytest.param(
        v2(TCP4_BLOCK + tlv(AUTHORITY, b"example.com"), ver_cmd=LOCAL, family=TCP4),
        info("v2", tlvs={AUTHORITY: b"example.com"}),
        id="v2_local_tlvs_after_the_block",
    ),
    pytest.param(
        v2(bytes(8), ver_cmd=LOCAL, family=TCP4),
        info("v2"),
        id="v2_local_block_shorter_than_its_family_accepted",
    ),
    pytest.param(
        v2(b"\x07" * 20, ver_cmd=LOCAL, family=0x45),
        info("v2"),
        id="v2_local_unknown_family_payload_skipped",
    ),
    pytest.param(v2(family=UNSPEC), info("v2"), id="v2_unspec_keeps_peer"),
    pytest.param(
        v2(tlv(UNIQUE_ID, UNIQUE), family=UNSPEC),
        info("v2", tlvs={UNIQUE_ID: UNIQUE}),
        id="v2_unspec_with_tlv",
    ),
    pytest.param(v2(UNIX_BLOCK, family=UNIX_STREAM), info("v2"), id="v2_af_unix_keeps_peer"),
    pytest.param(v2(UNIX_BLOCK, family=UNIX_DGRAM), info("v2"), id="v2_af_unix_dgram_keeps_peer"),
    pytest.param(V2_TCP4, info("v2", *TCP4_PEERS), id="v2_tcp4"),
    pytest.param(v2(TCP4_BLOCK, family=UDP4), info("v2", *TCP4_PEERS), id="v2_dgram_udp4"),
    pytest.param(
        v2(inet("0.0.0.0", "255.255.255.255", 0, 65535), family=TCP4),
        info("v2", ("0.0.0.0", 0), ("255.255.255.255", 65535)),
        id="v2_tcp4_port_bounds",
    ),
    pytest.param(
        v2(TCP6_BLOCK, family=TCP6),
        info("v2", ("2001:db8::1", 40000), ("::1", 8443)),
        id="v2_tcp6",
    ),
    pytest.param(
        v2(TCP6_BLOCK, family=UDP6),
        info("v2", ("2001:db8::1", 40000), ("::1", 8443)),
        id="v2_dgram_udp6",
    ),
    pytest.param(
        v2(inet("::ffff:192.0.2.1", "::ffff:192.0.2.2", 1, 2), family=TCP6),
        info("v2", ("::ffff:192.0.2.1", 1), ("::ffff:192.0.2.2", 2)),
        id="v2_tcp6_ipv4_mapped",
    ),
    pytest.param(
        v2(TCP4_BLOCK + tlv(ALPN, b"h2"), family=TCP4),
        info("v2", *TCP4_PEERS, tlvs={ALPN: b"h2"}),
        id="v2_tlv_alpn",
    ),
    pytest.param(
        v2(TCP6_BLOCK + tlv(AUTHORITY, b"example.com"), family=TCP6),
        info("v2", ("2001:db8::1", 40000), ("::1", 8443), tlvs={AUTHORITY: b"example.com"}),
        id="v2_tlv_authority",
    ),
    pytest.param(
        v2(TCP4_BLOCK + tlv(UNIQUE_ID, UNIQUE), family=TCP4),
        info("v2", *TCP4_PEERS, tlvs={UNIQUE_ID: UNIQUE}),
        id="v2_tlv_unique_id",
    ),
    pytest.param(
        v2(TCP4_BLOCK + tlv(NOOP, b""), family=TCP4),
        info("v2", *TCP4_PEERS, tlvs={NOOP: b""}),
        id="v2_tlv_empty_value",
    ),
    pytest.param(
        v2(TCP4_BLOCK + ssl(0x01, sub=tlv(SSL_VERSION, b"TLSv1.3")), family=TCP4),
        info(
            "v2",
            *TCP4_PEERS,
            tls=True,
            tlvs={SSL: b"\x01\x00\x00\x00\x00" + tlv(SSL_VERSION, b"TLSv1.3")},
        ),
        id="v2_tlv_ssl_client_bit_is_tls",
    ),
    pytest.param(
        v2(TCP4_BLOCK + ssl(0x07), family=TCP4),
        info("v2", *TCP4_PEERS, tls=True, tlvs={SSL: b"\x07\x00\x00\x00\x00"}),
        id="v2_tlv_ssl_client_bit_with_cert_bits_is_tls",
    ),
    pytest.param(
        v2(TCP4_BLOCK + ssl(0x06, verify=1), family=TCP4),
        info("v2", *TCP4_PEERS, tls=False, tlvs={SSL: b"\x06\x00\x00\x00\x01"}),
        id="v2_tlv_ssl_without_client_bit_is_not_tls",
    ),
    pytest.param(
        v2(
            TCP4_BLOCK
            + tlv(ALPN, b"http/1.1")
            + tlv(AUTHORITY, b"example.com")
            + ssl(0x01)
            + tlv(UNIQUE_ID, UNIQUE)
            + tlv(NETNS, b"blue")
            + tlv(0xE0, b"custom")
            + tlv(NOOP, bytes(7)),
            family=TCP4,
        ),
        info(
            "v2",
            *TCP4_PEERS,
            tls=True,
            tlvs={
                ALPN: b"http/1.1",
                AUTHORITY: b"example.com",
                SSL: b"\x01\x00\x00\x00\x00",
                UNIQUE_ID: UNIQUE,
                NETNS: b"blue",
                0xE0: b"custom",
                NOOP: bytes(7),
            },
        ),
        id="v2_tlvs_several_kept_by_type",
    ),
    pytest.param(
        v2(TCP4_BLOCK + tlv(AUTHORITY, b"first") + tlv(AUTHORITY, b"last"), family=TCP4),
        info("v2", *TCP4_PEERS, tlvs={AUTHORITY: b"last"}),
        id="v2_tlv_repeated_keeps_last",
    ),
]


@pytest.mark.parametrize("optional", [False, True], ids=["required", "optional"])
@pytest.mark.parametrize("mode", ["own", "auto"])
@pytest.mark.parametrize(("header", "expected"), V1_VALID + V2_VALID)
def test_proxy_valid_header_read_whole(
    header: bytes, expected: ProxyInfo, mode: str, optional: bool
) -> None:
    own: Mode = "v1" if expected.version == "v1" else "v2"
    assert read_whole(own if mode == "own" else "auto", header + REQUEST, optional) == (
        expected,
        REQUEST,
    )


@pytest.mark.parametrize("mode", ["own", "auto"])
@pytest.mark.parametrize(("header", "expected"), V1_VALID + V2_VALID)
def test_proxy_valid_header_read_byte_by_byte(
    header: bytes, expected: ProxyInfo, mode: str
) -> None:
    own: Mode = "v1" if expected.version == "v1" else "v2"
    result = read_byte_by_byte(own if mode == "own" else "auto", header, REQUEST)
    assert result == (expected, REQUEST)


@pytest.mark.parametrize(("header", "expected"), V1_VALID[:1] + V2_VALID[-2:])
def test_proxy_valid_header_split_anywhere_in_two(header: bytes, expected: ProxyInfo) -> None:
    data = header + REQUEST
    for cut in range(1, len(data)):
        reader = ProxyHeaderReader("auto")
        first = reader.feed(data[:cut])
        if cut < len(header):
            assert first is None
            assert reader.feed(data[cut:]) == (expected, REQUEST)
        else:
            assert first == (expected, data[len(header) : cut])


@pytest.mark.parametrize(
    ("header", "version"),
    [(V1_TCP4, "v1"), (V2_TCP4, "v2")],
    ids=["v1", "v2"],
)
def test_proxy_header_alone_leaves_rest_empty(header: bytes, version: str) -> None:
    result = read_whole("auto", header)
    assert result[0] is not None
    assert result[0].version == version
    assert result[1] == b""


def test_proxy_second_header_belongs_to_the_http_stream() -> None:
    header = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"
    assert read_whole("auto", header + header + REQUEST) == (
        info("v1", ("192.0.2.1", 1), ("192.0.2.2", 2)),
        header + REQUEST,
    )


def test_proxy_info_is_frozen() -> None:
    result = read_whole("v1", b"PROXY UNKNOWN\r\n")[0]
    assert result is not None
    with pytest.raises(AttributeError):
        result.tls = True  # type: ignore[misc]


@pytest.mark.parametrize("piece", [1, 1000, 4096, 65551])
def test_proxy_v2_largest_declared_length_arriving_in_pieces(piece: int) -> None:
    # 65535 payload bytes, the most the 16-bit length allows: the block, an ALPN TLV and a
    # NOOP TLV padding the rest.
    alpn = tlv(ALPN, b"h2")
    padding = bytes(65535 - len(TCP4_BLOCK) - len(alpn) - 3)
    header = v2(TCP4_BLOCK + alpn + tlv(NOOP, padding), family=TCP4)
    assert len(header) == 16 + 65535
    data = header + REQUEST
    reader = ProxyHeaderReader("v2")
    fed = 0
    result = None
    while result is None:
        assert fed < len(header), "no result once the whole header arrived"
        result = reader.feed(data[fed : fed + piece])
        fed += piece
    assert fed >= len(header)
    assert result == (
        info("v2", *TCP4_PEERS, tlvs={ALPN: b"h2", NOOP: padding}),
        data[len(header) : fed],
    )


def test_proxy_v2_declared_length_not_yet_arrived_waits() -> None:
    reader = ProxyHeaderReader("v2")
    assert reader.feed(v2(TCP4_BLOCK, family=TCP4, length=1000)) is None
    assert reader.feed(REQUEST) is None


@pytest.mark.parametrize(
    ("mode", "prefix"),
    [
        ("v1", b"PROXY TCP4 192.0.2.1"),
        ("v1", b"PROXY"),
        ("v2", V2_SIGNATURE),
        ("v2", V2_SIGNATURE + bytes([PROXY, TCP4, 0])),
        ("auto", b"\r\n\r\n"),
        ("auto", b"P"),
        ("auto", b""),
    ],
    ids=["v1_line", "v1_signature", "v2_signature", "v2_length", "auto_v2", "auto_v1", "nothing"],
)
def test_proxy_incomplete_header_needs_more_bytes(mode: Mode, prefix: bytes) -> None:
    assert ProxyHeaderReader(mode).feed(prefix) is None


# ---------------------------------------------------------------- strict mode: header required


@pytest.mark.parametrize("mode", ["v1", "v2", "auto"])
def test_proxy_header_missing_plain_http_refused_after_first_byte(mode: Mode) -> None:
    label = "" if mode == "auto" else f" {mode}"
    assert refused_at(mode, REQUEST) == (400, f"PROXY protocol{label} header required", 1)


@pytest.mark.parametrize(
    ("mode", "data", "at"),
    [
        ("v1", V2_TCP4, 1),
        ("v2", V1_TCP4, 1),
        ("auto", b"PUT / HTTP/1.1\r\n", 2),
        ("v2", b"PUT / HTTP/1.1\r\n", 1),
        ("auto", b"\r\nGET / HTTP/1.1\r\n", 3),
        ("v1", b"\r\nGET / HTTP/1.1\r\n", 1),
        ("auto", b"proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 1),
        ("v1", b"PROXY\r\n", 6),
        ("auto", b"PROXYTCP4 192.0.2.1 192.0.2.2 1 2\r\n", 6),
        ("auto", V2_SIGNATURE[:11] + b"X" + bytes([PROXY, TCP4, 0, 12]) + TCP4_BLOCK, 12),
    ],
    ids=[
        "v1_mode_refuses_v2_header",
        "v2_mode_refuses_v1_header",
        "auto_put_after_second_byte",
        "v2_put_after_first_byte",
        "auto_crlf_then_http",
        "v1_crlf_then_http",
        "v1_lowercase_proxy",
        "v1_proxy_without_space",
        "v1_proxy_glued_to_protocol",
        "v2_last_signature_byte_wrong",
    ],
)
def test_proxy_not_a_signature_refused_on_the_deciding_byte(
    mode: Mode, data: bytes, at: int
) -> None:
    status, reason, fed = refused_at(mode, data)
    assert (status, fed) == (400, at)
    assert "header required" in reason


# ---------------------------------------------------------------- optional mode


@pytest.mark.parametrize(
    ("mode", "data", "at"),
    [
        ("auto", REQUEST, 1),
        ("v1", REQUEST, 1),
        ("v2", REQUEST, 1),
        ("auto", b"PUT / HTTP/1.1\r\n\r\n", 2),
        ("auto", b"\r\nGET / HTTP/1.1\r\n\r\n", 3),
        ("auto", b"proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n" + REQUEST, 1),
        ("v2", b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n" + REQUEST, 1),
    ],
    ids=[
        "plain_http",
        "plain_http_v1_mode",
        "plain_http_v2_mode",
        "put_shares_first_byte",
        "leading_crlf_shares_two_bytes",
        "lowercase_proxy_is_http",
        "v2_mode_passes_v1_header_through",
    ],
)
def test_proxy_optional_without_header_returns_all_bytes(mode: Mode, data: bytes, at: int) -> None:
    assert read_whole(mode, data, optional=True) == (None, data)
    reader = ProxyHeaderReader(mode, optional=True)
    for fed in range(1, at):
        assert reader.feed(data[fed - 1 : fed]) is None
    assert reader.feed(data[at - 1 : at]) == (None, data[:at])


def test_proxy_optional_nothing_fed_needs_more_bytes() -> None:
    assert ProxyHeaderReader("auto", optional=True).feed(b"") is None


@pytest.mark.parametrize(
    "data",
    [b"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n", v2(ver_cmd=0x22, family=UNSPEC)],
    ids=["v1", "v2"],
)
def test_proxy_optional_still_refuses_a_malformed_header(data: bytes) -> None:
    assert refused_at("auto", data, optional=True)[0] == 400


# ---------------------------------------------------------------- v1 refused


def v1_refused(data: bytes, reason: str, at: int | None = None, *, id: str) -> object:
    """A refusal case: `reason` is part of the reason, `at` the deciding byte (default: the
    last)."""
    return pytest.param(data, reason, len(data) if at is None else at, id=id)


V1_MALFORMED = [
    v1_refused(
        b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n",
        "no CRLF within 107 bytes",
        106,
        id="v1_line_of_108_bytes_refused",
    ),
    v1_refused(
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2" + b" " * 80,
        "no CRLF within 107 bytes",
        106,
        id="v1_missing_crlf",
    ),
    v1_refused(
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n" + REQUEST,
        "LF without CR",
        35,
        id="v1_bare_lf",
    ),
    v1_refused(b"PROXY UNKNOWN\n" + REQUEST, "LF without CR", 14, id="v1_unknown_bare_lf"),
    v1_refused(
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", "CR not followed by LF", id="v1_cr_without_lf"
    ),
    v1_refused(b"PROXY \r\n", "unknown protocol ''", id="v1_no_protocol"),
    v1_refused(
        b"PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n", "unknown protocol 'tcp4'", id="v1_lowercase_tcp4"
    ),
    v1_refused(b"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n", "unknown protocol 'TCP5'", id="v1_tcp5"),
    v1_refused(b"PROXY UNKNOWNX\r\n", "unknown protocol 'UNKNOWNX'", id="v1_unknown_glued"),
    v1_refused(
        b"PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n", "unknown protocol ''", id="v1_double_space"
    ),
    v1_refused(
        b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n", "single spaces", id="v1_double_space_inside"
    ),
    v1_refused(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n", "single spaces", id="v1_trailing_space"),
    v1_refused(b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", "single spaces", id="v1_missing_port"),
    v1_refused(b"PROXY TCP4\r\n", "single spaces", id="v1_tcp4_alone"),
    v1_refused(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", "single spaces", id="v1_extra_field"),
    v1_refused(
        b"PROXY TCP4\t192.0.2.1 192.0.2.2 1 2\r\n", "not printable ASCII", id="v1_tab_separator"
    ),
    v1_refused(
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\x00\r\n", "not printable ASCII", id="v1_nul_byte"
    ),
    v1_refused(b"PROXY UNKNOWN caf\xc3\xa9\r\n", "not printable ASCII", id="v1_unknown_non_ascii"),
    v1_refused(
        "PROXY TCP4 192.0.2.1 192.0.2.2 \u0661 2\r\n".encode(),
        "not printable ASCII",
        id="v1_port_non_ascii_digit",
    ),
]


@pytest.mark.parametrize(("data", "reason", "at"), V1_MALFORMED)
def test_proxy_v1_malformed_refused(data: bytes, reason: str, at: int) -> None:
    status, said, fed = refused_at("v1", data)
    assert (status, fed) == (400, at)
    assert said.startswith("malformed PROXY v1 header: ")
    assert reason in said


@pytest.mark.parametrize(
    "port",
    ["65536", "99999", "100000", "-1", "+1", "01", "00", "1.5", "0x1", "1e3", "a"],
)
@pytest.mark.parametrize("side", ["source", "destination"])
def test_proxy_v1_bad_port_refused(port: str, side: str) -> None:
    ports = f"{port} 443" if side == "source" else f"56324 {port}"
    data = f"PROXY TCP4 192.0.2.1 192.0.2.2 {ports}\r\n".encode()
    assert refused_at("v1", data) == (
        400,
        f"malformed PROXY v1 header: bad port {port!r}",
        len(data),
    )


@pytest.mark.parametrize(
    ("proto", "address", "family"),
    [
        ("TCP4", "::1", "IPv4"),
        ("TCP4", "::ffff:192.0.2.1", "IPv4"),
        ("TCP6", "192.0.2.1", "IPv6"),
        ("TCP4", "256.0.0.1", "IPv4"),
        ("TCP4", "192.0.2", "IPv4"),
        ("TCP4", "192.0.02.1", "IPv4"),
        ("TCP4", "localhost", "IPv4"),
        ("TCP6", "2001:db8::1::2", "IPv6"),
        ("TCP6", "fe80::1%eth0", "IPv6"),
        ("TCP6", "[::1]", "IPv6"),
    ],
    ids=[
        "tcp4_with_ipv6",
        "tcp4_with_ipv4_mapped_ipv6",
        "tcp6_with_ipv4",
        "tcp4_octet_too_big",
        "tcp4_three_octets",
        "tcp4_leading_zero",
        "tcp4_hostname",
        "tcp6_two_double_colons",
        "tcp6_scope",
        "tcp6_brackets",
    ],
)
@pytest.mark.parametrize("side", ["source", "destination"])
def test_proxy_v1_wrong_family_address_refused(
    proto: str, address: str, family: str, side: str
) -> None:
    other = "192.0.2.9" if proto == "TCP4" else "2001:db8::9"
    addresses = f"{address} {other}" if side == "source" else f"{other} {address}"
    data = f"PROXY {proto} {addresses} 1 2\r\n".encode()
    assert refused_at("v1", data) == (
        400,
        f"malformed PROXY v1 header: {address!r} is not an {family} address",
        len(data),
    )


# ---------------------------------------------------------------- v2 refused


@pytest.mark.parametrize("ver_cmd", [0x01, 0x11, 0x31, 0xF1, 0x10], ids=hex)
def test_proxy_v2_version_not_2_refused_at_byte_13(ver_cmd: int) -> None:
    data = v2(TCP4_BLOCK, ver_cmd=ver_cmd, family=TCP4)
    assert refused_at("v2", data) == (
        400,
        f"PROXY v2: version {ver_cmd >> 4} (must be 2)",
        13,
    )


@pytest.mark.parametrize("ver_cmd", [0x22, 0x23, 0x2F], ids=hex)
def test_proxy_v2_command_2_and_up_refused_at_byte_13(ver_cmd: int) -> None:
    data = v2(TCP4_BLOCK, ver_cmd=ver_cmd, family=TCP4)
    assert refused_at("auto", data) == (
        400,
        f"PROXY v2: command {ver_cmd & 0xF} (must be 0 LOCAL or 1 PROXY)",
        13,
    )


@pytest.mark.parametrize(
    "family", [0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x40, 0x41, 0xFF], ids=hex
)
def test_proxy_v2_unknown_family_byte_refused_at_byte_14(family: int) -> None:
    data = v2(TCP6_BLOCK, family=family)
    assert refused_at("v2", data) == (
        400,
        f"PROXY v2: unknown address family and transport 0x{family:02x}",
        14,
    )


@pytest.mark.parametrize(
    ("ver_cmd", "family", "length", "name", "block"),
    [
        (PROXY, TCP4, 8, "TCP4", 12),
        (PROXY, TCP4, 0, "TCP4", 12),
        (PROXY, UDP4, 11, "UDP4", 12),
        (PROXY, TCP6, 12, "TCP6", 36),
        (PROXY, UDP6, 35, "UDP6", 36),
        (PROXY, UNIX_STREAM, 215, "UNIX stream", 216),
        (PROXY, UNIX_DGRAM, 36, "UNIX datagram", 216),
    ],
    ids=["tcp4", "tcp4_empty", "udp4", "tcp6", "udp6", "unix", "unix_dgram"],
)
def test_proxy_v2_length_shorter_than_family_block_refused_at_byte_16(
    ver_cmd: int, family: int, length: int, name: str, block: int
) -> None:
    data = v2(bytes(length), ver_cmd=ver_cmd, family=family)
    assert refused_at("v2", data) == (
        400,
        f"PROXY v2: address length {length} too short for {name} (needs {block})",
        16,
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (TCP4_BLOCK + b"\x01", "truncated TLV header (1 of its 3 bytes)"),
        (TCP4_BLOCK + b"\x01\x00", "truncated TLV header (2 of its 3 bytes)"),
        (TCP4_BLOCK + b"\x02\x00\x05abc", "TLV 0x02 of 5 bytes runs past the header's end"),
        (TCP4_BLOCK + tlv(ALPN, b"h2") + b"\x05\xff\xff", "TLV 0x05 of 65535 bytes runs past"),
        (TCP4_BLOCK + ssl(0x01)[:-1], "TLV 0x20 of 5 bytes runs past"),
        (TCP4_BLOCK + tlv(SSL, b"\x01\x00\x00\x00"), "SSL TLV of 4 bytes (needs at least 5)"),
        (TCP4_BLOCK + tlv(SSL, b""), "SSL TLV of 0 bytes (needs at least 5)"),
        (TCP4_BLOCK + ssl(0x01) + tlv(SSL, b"\x01"), "SSL TLV of 1 bytes (needs at least 5)"),
    ],
    ids=[
        "tlv_header_1_byte",
        "tlv_header_2_bytes",
        "tlv_value_past_end",
        "tlv_length_ffff",
        "ssl_tlv_cut",
        "ssl_tlv_4_bytes",
        "ssl_tlv_empty",
        "ssl_tlv_second_short",
    ],
)
@pytest.mark.parametrize("ver_cmd", [PROXY, LOCAL], ids=["proxy", "local"])
def test_proxy_v2_truncated_tlv_refused(payload: bytes, reason: str, ver_cmd: int) -> None:
    data = v2(payload, ver_cmd=ver_cmd, family=TCP4)
    status, said, fed = refused_at("v2", data)
    assert (status, fed) == (400, len(data))
    assert said.startswith(f"PROXY v2: {reason}")
