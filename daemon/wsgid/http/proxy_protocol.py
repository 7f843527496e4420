"""The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 and v2), from bytes to facts.

Owns: `ProxyHeaderReader`, which takes a connection's first bytes as they
arrive and returns what the header says (`ProxyInfo`) and the bytes after it,
and the rules of both header formats. No I/O: the connection loop reads,
applies the time limit and answers the `ProtocolError` (always 400) this
raises; this module only judges bytes.

Theory of operation: the header is required, so the signature is judged byte
by byte and a stream that can no longer become one of the accepted signatures
is refused at once (the spec: the receiver must not guess), or, in optional
mode, handed back whole as the start of plain HTTP. Once a signature matched,
bytes are kept until the header can be judged: v1 until its CRLF (at most 107
bytes with it), v2 until the length its fixed 16 bytes declare (at most
16 + 65535). Fields of the v2 fixed part are checked as soon as each arrives.
Nothing past the header is kept: it is returned as `rest`, the start of HTTP.

A v2 TLV type that occurs twice keeps its last value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from wsgid.http.allowlist import address_text
from wsgid.http.errors import BadRequest

Mode = Literal["v1", "v2", "auto"]

V1_SIGNATURE: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
# The longest v1 line, CRLF included (TCP6 with two full-length addresses and ports).
V1_MAX: Final = 107
V2_FIXED: Final = 16  # signature, version and command, family and transport, length

V2_LOCAL: Final = 0x0
V2_PROXY: Final = 0x1
# Family and transport byte -> (name, bytes of its address block). UNSPEC has no block;
# the UNIX one (two 108-byte paths) holds nothing wsgid uses, so it keeps the TCP peer too.
V2_FAMILIES: Final = {
    0x00: ("UNSPEC", 0),
    0x11: ("TCP4", 12),  # two 4-byte addresses, two 2-byte ports
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),  # two 16-byte addresses, two 2-byte ports
    0x22: ("UDP6", 36),
    0x31: ("UNIX stream", 216),  # two 108-byte paths
    0x32: ("UNIX datagram", 216),
}

PP2_TYPE_SSL: Final = 0x20
PP2_CLIENT_SSL: Final = 0x01
# client (u8) and verify (u32) come first in a PP2_TYPE_SSL value.
PP2_SSL_MIN: Final = 5

_NO_TLVS: Final[Mapping[int, bytes]] = MappingProxyType({})

_SIGNATURES: Final[dict[str, tuple[tuple[str, bytes], ...]]] = {
    "v1": (("v1", V1_SIGNATURE),),
    "v2": (("v2", V2_SIGNATURE),),
    "auto": (("v1", V1_SIGNATURE), ("v2", V2_SIGNATURE)),
}


class ProxyInfo(NamedTuple):
    """What a PROXY header says about the connection it starts."""

    version: str  # "v1" or "v2"
    # (address, port) of the client and of the address it connected to; None keeps the
    # TCP peer's (v1 UNKNOWN; v2 LOCAL, UNSPEC and UNIX).
    client: tuple[str, int] | None
    destination: tuple[str, int] | None
    tls: bool  # v2: a PP2_TYPE_SSL TLV with the PP2_CLIENT_SSL bit
    tlvs: Mapping[int, bytes]  # v2: every TLV's raw value by type; empty for v1


class ProxyHeaderReader:
    """One connection's PROXY header, read incrementally: `feed` until it returns a result."""

    def __init__(self, mode: Mode, optional: bool = False) -> None:
        self._signatures = _SIGNATURES[mode]
        label = "" if mode == "auto" else f" {mode}"
        self._required = f"PROXY protocol{label} header required"
        self._optional = optional
        self._buffer = bytearray()
        self._version = ""  # the version whose signature matched; "" until one did

    def feed(self, data: bytes) -> tuple[ProxyInfo | None, bytes] | None:
        """None: need more bytes. Else (info, rest): `rest` is every byte after the header
        (the start of the HTTP stream, possibly b""). info is None only when `optional` and the
        stream does not start with a PROXY header (then rest is all bytes fed so far)."""
        self._buffer += data
        if not self._version:
            version = self._signature()
            if version is None:
                # The stream cannot start a header: it is HTTP (or garbage) from byte 0.
                if not self._optional:
                    raise BadRequest(self._required)
                rest = bytes(self._buffer)
                self._buffer = bytearray()
                return None, rest
            if not version:
                return None
            self._version = version
        parsed = self._read_v1() if self._version == "v1" else self._read_v2()
        if parsed is None:
            return None
        info, end = parsed
        rest = bytes(self._buffer[end:])
        self._buffer = bytearray()
        return info, rest

    def _signature(self) -> str | None:
        """The version whose signature the bytes so far start with; "" while they are the
        start of one (as no bytes at all are), None once they cannot be."""
        buffer = self._buffer
        version: str | None = None
        for candidate, signature in self._signatures:
            size = min(len(buffer), len(signature))
            if buffer[:size] == signature[:size]:
                if size == len(signature):
                    return candidate
                version = ""
        return version

    def _read_v1(self) -> tuple[ProxyInfo, int] | None:
        """The v1 line once its CRLF arrived, and where it ends."""
        buffer = self._buffer
        # The CR must come early enough for its LF to be byte V1_MAX at the latest.
        cr = buffer.find(b"\r", 0, V1_MAX - 1)
        # A bare LF ends no v1 line: refused when it arrives, not once V1_MAX bytes did.
        if buffer.find(b"\n", 0, V1_MAX - 1 if cr == -1 else cr) != -1:
            raise BadRequest("malformed PROXY v1 header: LF without CR")
        if cr == -1:
            if len(buffer) >= V1_MAX - 1:
                raise BadRequest(f"malformed PROXY v1 header: no CRLF within {V1_MAX} bytes")
            return None
        if cr + 1 == len(buffer):
            return None
        if buffer[cr + 1] != 0x0A:
            raise BadRequest("malformed PROXY v1 header: CR not followed by LF")
        line = buffer[len(V1_SIGNATURE) : cr].decode("latin-1")
        # Printable ASCII only: UNKNOWN takes any text, but not a control byte.
        if not (line.isascii() and line.isprintable()):
            raise BadRequest("malformed PROXY v1 header: a byte that is not printable ASCII")
        return _parse_v1(line), cr + 2

    def _read_v2(self) -> tuple[ProxyInfo, int] | None:
        """The v2 header once all its declared bytes arrived, and where it ends; its fixed
        fields are judged as each arrives."""
        buffer = self._buffer
        size = len(buffer)
        if size <= len(V2_SIGNATURE):
            return None
        version = buffer[12] >> 4
        command = buffer[12] & 0x0F
        if version != 2:
            raise BadRequest(f"PROXY v2: version {version} (must be 2)")
        if command not in (V2_LOCAL, V2_PROXY):
            raise BadRequest(f"PROXY v2: command {command} (must be 0 LOCAL or 1 PROXY)")
        if size < 14:
            return None
        family = buffer[13]
        known = V2_FAMILIES.get(family)
        # LOCAL ignores the family (the spec: the receiver must accept it); PROXY needs one
        # whose addresses it can read.
        if known is None and command == V2_PROXY:
            raise BadRequest(f"PROXY v2: unknown address family and transport 0x{family:02x}")
        if size < V2_FIXED:
            return None
        length = buffer[14] << 8 | buffer[15]
        if known is not None and length < known[1]:
            if command == V2_LOCAL:
                known = None  # LOCAL is accepted whatever its address block holds: skipped
            else:
                name, block = known
                raise BadRequest(
                    f"PROXY v2: address length {length} too short for {name} (needs {block})"
                )
        end = V2_FIXED + length
        if size < end:
            return None
        client: tuple[str, int] | None = None
        destination: tuple[str, int] | None = None
        if command == V2_PROXY and family >> 4 in (0x1, 0x2):
            width = 4 if family >> 4 == 0x1 else 16
            ports = V2_FIXED + 2 * width
            client = (_ip(buffer, V2_FIXED, width), buffer[ports] << 8 | buffer[ports + 1])
            destination = (
                _ip(buffer, V2_FIXED + width, width),
                buffer[ports + 2] << 8 | buffer[ports + 3],
            )
        if known is None:
            # LOCAL with a family of unknown layout, or a block too short for its family:
            # where its TLVs start is unknown too.
            return ProxyInfo("v2", None, None, False, _NO_TLVS), end
        tlvs, tls = _parse_tlvs(buffer, V2_FIXED + known[1], end)
        return ProxyInfo("v2", client, destination, tls, tlvs), end


def _parse_v1(line: str) -> ProxyInfo:
    """The v1 line after "PROXY " and before CRLF."""
    fields = line.split(" ")
    proto = fields[0]
    if proto == "UNKNOWN":
        # The spec: whatever follows UNKNOWN up to the CRLF is ignored.
        return ProxyInfo("v1", None, None, False, _NO_TLVS)
    if proto not in ("TCP4", "TCP6"):
        raise BadRequest(f"malformed PROXY v1 header: unknown protocol {proto[:16]!r}")
    if len(fields) != 5:
        raise BadRequest(
            f"malformed PROXY v1 header: expected '{proto} source destination sport dport'"
            " separated by single spaces"
        )
    _, source, dest, sport, dport = fields
    return ProxyInfo(
        "v1",
        (_v1_address(proto, source), _v1_port(sport)),
        (_v1_address(proto, dest), _v1_port(dport)),
        False,
        _NO_TLVS,
    )


def _v1_address(proto: str, text: str) -> str:
    try:
        if proto == "TCP4":
            return str(ipaddress.IPv4Address(text))
        # A scope ("%eth0") names an interface of the proxy's host, not a client's address.
        if "%" not in text:
            return address_text(ipaddress.IPv6Address(text))
    except ValueError:
        pass
    family = "IPv4" if proto == "TCP4" else "IPv6"
    raise BadRequest(f"malformed PROXY v1 header: {text[:45]!r} is not an {family} address")


def _v1_port(text: str) -> int:
    # Decimal digits only (the line is ASCII already), no sign, no leading zero but for "0".
    if text.isdigit() and (text == "0" or text[0] != "0") and int(text) <= 65535:
        return int(text)
    raise BadRequest(f"malformed PROXY v1 header: bad port {text[:8]!r}")


def _ip(buffer: bytearray, start: int, width: int) -> str:
    packed = bytes(buffer[start : start + width])
    return address_text(
        ipaddress.IPv4Address(packed) if width == 4 else ipaddress.IPv6Address(packed)
    )


def _parse_tlvs(buffer: bytearray, start: int, end: int) -> tuple[Mapping[int, bytes], bool]:
    """The TLVs in buffer[start:end] by type, and whether a PP2_TYPE_SSL says the client
    used TLS."""
    tlvs: dict[int, bytes] = {}
    tls = False
    pos = start
    while pos < end:
        if pos + 3 > end:
            raise BadRequest(f"PROXY v2: truncated TLV header ({end - pos} of its 3 bytes)")
        kind = buffer[pos]
        size = buffer[pos + 1] << 8 | buffer[pos + 2]
        pos += 3
        if pos + size > end:
            raise BadRequest(
                f"PROXY v2: TLV 0x{kind:02x} of {size} bytes runs past the header's end"
                f" ({end - pos} bytes left)"
            )
        value = bytes(buffer[pos : pos + size])
        pos += size
        if kind == PP2_TYPE_SSL:
            if size < PP2_SSL_MIN:
                raise BadRequest(
                    f"PROXY v2: SSL TLV of {size} bytes (needs at least {PP2_SSL_MIN})"
                )
            tls = bool(value[0] & PP2_CLIENT_SSL)
        tlvs[kind] = value
    return (MappingProxyType(tlvs) if tlvs else _NO_TLVS), tls
