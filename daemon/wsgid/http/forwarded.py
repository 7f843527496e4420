"""Forwarded headers: what a trusted proxy may tell about a request, and what nobody else may.

Owns: the rules applied to each request head according to the connection's TCP peer, once
the head is complete and before the application runs:

The peer is the one that sent the request's bytes: the TCP peer, or on a PROXY
connection the client its header names (an L4 proxy passes the client's bytes through
untouched, so judging its own address would let every client behind it speak for a
trusted proxy). gunicorn judges the TCP peer; this is the difference.

- From a peer on `forwarded_allow_ips` (`Trusted`):
  - `secure_scheme_headers` set `wsgi.url_scheme` (gunicorn 26's semantics): a present
    header line whose value is exactly the one configured says `https`, any other value
    `http`; two lines (of one header or of two) that disagree are refused with 400.
    Trailers never count (the parser keeps none).
  - `forwarder_headers` (SCRIPT_NAME, PATH_INFO, REMOTE_USER), which a proxy sends under
    those underscore names: SCRIPT_NAME is taken off the front of PATH_INFO (a path
    outside it is refused with 400); PATH_INFO and REMOTE_USER are taken as they are.
  - with `remote_addr_from`, REMOTE_ADDR and REMOTE_PORT from `X-Forwarded-For` or
    RFC 7239 `Forwarded`: the hops are read right to left over every field line (joined
    in order by the parser), proxies on the allow-list's networks skipped; the first hop not
    on them is the client. If every hop is on them, the leftmost is. `*` trusts the peer
    alone, never a hop: with `forwarded_allow_ips = "*"` the client is the rightmost hop,
    the one the peer added (else a client writing `X-Forwarded-For: 6.6.6.6` would be
    6.6.6.6). A hop that is not an IP address (`unknown`, an obfuscated name, a scoped
    IPv6 address, garbage) ends the walk and the TCP peer stays, since nothing reliable can
    be said. The leftmost entry is never taken on its own: the client writes it. With
    `Forwarded`, the chosen hop's `proto` also sets the scheme (400 if a scheme header said
    otherwise).
  - the request id header (`request_id_header`) is adopted as the request's id.
- From anyone else (`Untrusted`), with `clear_untrusted_forwarded_headers` (the default),
  the forwarded headers (`REMOVED`, and the `secure_scheme_headers` names) are taken out
  of the environ, so an app that reads `HTTP_X_FORWARDED_PROTO` itself (Django's
  SECURE_PROXY_SSL_HEADER) cannot be fooled by a client. Its forwarder headers never
  reach the environ either (the parser sets them aside, `fields.py`), and its request id
  header stays a plain header, never the request's id.

A header spelt with underscores (`X_Forwarded_Proto`) is never one of these: the parser
leaves such names out, or with `header_map = "dangerous"` keeps them off these keys.

Cost: a request that carries none of these headers costs one set-disjointness test on its
fields (C, no Python loop); the rest runs only for requests that carry them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Set
from typing import Final, Literal

from wsgid.http.abnf import OWS_BYTES
from wsgid.http.allowlist import AllowList, address_text
from wsgid.http.environ import decoded_path
from wsgid.http.errors import BadRequest
from wsgid.http.fields import entry
from wsgid.http.request import Request

RemoteAddrFrom = Literal["peer", "x-forwarded-for", "forwarded"]

# The names a proxy may send as forwarder headers (gunicorn's `forwarder_headers`).
FORWARDER_NAMES: Final = frozenset(("SCRIPT_NAME", "PATH_INFO", "REMOTE_USER"))

# The environ keys of the headers proxies use to say who the client is and how it came:
# taken out of the environ when an untrusted peer sends them (with the scheme headers).
REMOVED: Final = frozenset((
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PROTOCOL",
    "HTTP_X_FORWARDED_SCHEME",
    "HTTP_X_FORWARDED_SERVER",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_REAL_IP",
    "HTTP_X_SCHEME",
    "HTTP_X_URL_SCHEME",
    "HTTP_FRONT_END_HTTPS",
))  # fmt: skip

XFF: Final = "HTTP_X_FORWARDED_FOR"
FORWARDED: Final = "HTTP_FORWARDED"


def environ_key(name: str) -> str:
    """The environ key of a header name (`X-Forwarded-Proto` -> `HTTP_X_FORWARDED_PROTO`)."""
    return "HTTP_" + name.upper().replace("-", "_")


class Rules:
    """What is done with one connection's request heads; see the subclasses."""

    def apply(self, req: Request) -> None:
        """Judge and complete `req`'s head; raise BadRequest to refuse it."""
        raise NotImplementedError


class Forwarding:
    """A worker's forwarded-header settings, and the rules for each peer."""

    def __init__(
        self,
        allow: AllowList,
        scheme_headers: Mapping[str, str],
        forwarder_headers: Iterable[str],
        clear_untrusted: bool,
        remote_addr_from: RemoteAddrFrom,
        request_id_header: str,
    ) -> None:
        self.allow = allow
        schemes = tuple((environ_key(name), value) for name, value in scheme_headers.items())
        id_key = environ_key(request_id_header) if request_id_header else ""
        self.trusted = Trusted(
            schemes, frozenset(forwarder_headers), remote_addr_from, id_key, allow
        )
        removed = REMOVED | {key for key, _ in schemes}
        self.untrusted: Rules | None = Untrusted(removed) if clear_untrusted else None

    def rules(self, peer: str) -> Rules | None:
        """The rules for a connection whose TCP peer is `peer` ("" for a UNIX socket)."""
        return self.trusted if self.allow.allows(peer) else self.untrusted


class Untrusted(Rules):
    """A peer off the allow-list: its forwarded headers leave the environ."""

    def __init__(self, removed: Set[str]) -> None:
        self.removed = frozenset(removed)

    def apply(self, req: Request) -> None:
        fields = req.environ
        if self.removed.isdisjoint(fields):
            return
        assert isinstance(fields, dict)  # a head with fields has them in a dict (fields.py)
        for key in self.removed.intersection(fields):
            del fields[key]


class Trusted(Rules):
    """A peer on the allow-list: its forwarded headers are believed."""

    def __init__(
        self,
        schemes: tuple[tuple[str, str], ...],
        forwarder: Set[str],
        remote_addr_from: RemoteAddrFrom,
        id_key: str,
        allow: AllowList,
    ) -> None:
        self.schemes = schemes
        self.forwarder = frozenset(forwarder)
        self.remote_addr_from = remote_addr_from
        self.id_key = id_key
        self.allow = allow
        addr_key = {"x-forwarded-for": XFF, "forwarded": FORWARDED}.get(remote_addr_from)
        self.addr_key = addr_key or ""
        # The keys whose presence means there is work to do.
        self.keys = frozenset(
            [key for key, _ in schemes] + ([addr_key] if addr_key else []) + [id_key]
        ) - {""}

    def apply(self, req: Request) -> None:
        fields = req.environ
        underscored = req.underscored
        if self.keys.isdisjoint(fields) and underscored is None:
            return
        overrides: dict[str, str] = {}
        scheme = self._scheme(req, fields)
        if scheme:
            overrides["wsgi.url_scheme"] = scheme
        if self.addr_key:
            value = fields.get(self.addr_key)
            if value is not None:
                self._client(value, overrides)
        if underscored is not None and self.forwarder:
            self._forwarder(req, underscored, overrides)
        if self.id_key:
            req.incoming_id = fields.get(self.id_key)
        if overrides:
            req.overrides = overrides

    def _scheme(self, req: Request, fields: Mapping[str, str]) -> str:
        scheme = ""
        for key, secure in self.schemes:
            value = fields.get(key)
            if value is None:
                continue
            # Each field line says a scheme of its own; the environ joins repeated ones.
            for said in _lines_of(req, key) if "," in value else (value,):
                said = "https" if said == secure else "http"
                if scheme and said != scheme:
                    raise BadRequest("contradictory scheme headers")
                scheme = said
        return scheme

    def _client(self, value: str, overrides: dict[str, str]) -> None:
        if self.addr_key == XFF:
            hops = [(_node(hop), "") for hop in value.split(",")]
        else:
            hops = _forwarded_hops(value)
        chosen = _rightmost_untrusted(hops, self.allow)
        if chosen is None:
            return
        (address, port), proto = chosen
        overrides["REMOTE_ADDR"] = address
        overrides["REMOTE_PORT"] = port
        if proto not in ("http", "https"):
            return
        if overrides.setdefault("wsgi.url_scheme", proto) != proto:
            raise BadRequest("contradictory scheme headers")

    def _forwarder(
        self, req: Request, underscored: Mapping[str, str], overrides: dict[str, str]
    ) -> None:
        forwarder = self.forwarder
        script = underscored.get("SCRIPT_NAME") if "SCRIPT_NAME" in forwarder else None
        if script is not None:
            script = script.rstrip("/")
            path = decoded_path(req.path)
            if script and path != script and not path.startswith(script + "/"):
                raise BadRequest("the path is outside the SCRIPT_NAME the proxy sent")
            overrides["SCRIPT_NAME"] = script
            overrides["PATH_INFO"] = path[len(script) :]
        for name in ("PATH_INFO", "REMOTE_USER"):
            value = underscored.get(name) if name in forwarder else None
            if value is not None:
                if name == "PATH_INFO" and value and not value.startswith("/"):
                    raise BadRequest("the PATH_INFO the proxy sent is not a path")
                overrides[name] = value


def _lines_of(req: Request, key: str) -> list[str]:
    """The values of `req`'s field lines whose environ key is `key`, one per line."""
    values = []
    for line in req.field_lines:
        name, _, value = line.partition(b":")
        if entry(name)[0] == key:
            values.append(value.strip(OWS_BYTES).decode("latin-1"))
    return values


Node = tuple[str, str] | None  # (address, port or ""), None: not an IP address
Hop = tuple[Node, str]  # a node and the scheme it was reached by ("" when not said)


def _rightmost_untrusted(hops: list[Hop], allow: AllowList) -> tuple[tuple[str, str], str] | None:
    """The client among `hops` (left to right) and its scheme: see the module docstring."""
    found: tuple[tuple[str, str], str] | None = None
    for node, proto in reversed(hops):
        if node is None:
            return None
        found = (node, proto)
        if not allow.listed(node[0]):
            break
    return found  # the first hop off the list, or the leftmost if every hop is on it


_V4_PORT: Final = re.compile(r"([0-9.]+):([0-9]{1,5})")
_V6_PORT: Final = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?")


def _node(text: str) -> Node:
    """An X-Forwarded-For entry or a Forwarded `for=` value as (address, port)."""
    text = text.strip()
    address, port = text, ""
    bracketed = _V6_PORT.fullmatch(text)
    if bracketed:
        address, port = bracketed.group(1), bracketed.group(2) or ""
    else:
        with_port = _V4_PORT.fullmatch(text)
        if with_port:
            address, port = with_port.groups()
    if "%" in address:
        return None  # a scope ("%eth0") names an interface of a proxy's host, not a client
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if port and int(port) > 65535:
        return None
    return (address_text(ip), port)


# RFC 7239 §4: pairs of token "=" (token / quoted-string), ";" within an element, ","
# between elements.
_PAIR: Final = re.compile(
    r"""[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]*)"""
    r"""[ \t]*([;,]|$)"""
)


def _forwarded_hops(value: str) -> list[Hop]:
    """The hops of a Forwarded field value, left to right; [] if it is malformed."""
    hops: list[Hop] = []
    element: dict[str, str] = {}
    pos = 0
    end = len(value)
    while pos < end:
        match = _PAIR.match(value, pos)
        if match is None:
            return []
        name, raw, sep = match.groups()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        element[name.lower()] = raw
        pos = match.end()
        if sep != ";":
            hops.append(_hop(element))
            element = {}
    return hops


def _hop(element: Mapping[str, str]) -> Hop:
    target = element.get("for")
    return (_node(target) if target is not None else None, element.get("proto", "").lower())
