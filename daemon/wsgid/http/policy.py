"""The HTTP/1.1 request rules wsgid enforces, in one place for every worker kind.

Owns: deciding whether a parsed request head is acceptable, and with which
status it is refused (RFC 9110 "HTTP Semantics", RFC 9112 "HTTP/1.1"). llhttp
already refuses malformed syntax (bad tokens, bare LF, obs-fold, bad chunk
sizes, Content-Length together with Transfer-Encoding, duplicate
Content-Length); this module maps those refusals to status codes and adds the
semantic rules llhttp leaves to the server. It does no I/O and knows nothing of
sockets or workers: `check_head` takes a `Request` with the values of its
framing fields (`fields.py`) and either returns (after filling in the derived
fields) or raises `ProtocolError`.

Rules kept here:
- RFC 9112 §3.2: the request target is origin-form, absolute-form, `*` (only
  with OPTIONS) or authority-form (only with CONNECT, which wsgid does not serve).
- RFC 9112 §3.2 / RFC 9110 §7.2: HTTP/1.1 requires exactly one Host field.
- RFC 9112 §6.1: Transfer-Encoding is HTTP/1.1 only; its final coding must be
  `chunked` (llhttp refuses the rest); an unknown coding is 501.
- RFC 9112 §6.3: Content-Length is 1*DIGIT, a single value.
- RFC 9110 §10.1.1: `Expect: 100-continue` is honoured on HTTP/1.1 only.
- RFC 9110 §8.3: a single Content-Type.
- Header names containing `_` are not mapped into the environ (they would
  collide with `-` in the CGI-style HTTP_* keys); see `fields.py`.

The grammar these rules test against (token, Host, Content-Length, the
target's forms) is `abnf.py`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Final

from wsgid.http import abnf
from wsgid.http.abnf import members
from wsgid.http.cache import remember
from wsgid.http.errors import BadRequest, ProtocolError
from wsgid.http.fields import CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, TRANSFER_ENCODING
from wsgid.http.request import Request

# Where a head's Transfer-Encoding values are (RFC 9112 §5: field-line =
# field-name ":" OWS field-value OWS), found in its bytes after llhttp refused it.
_TE_FIELD: Final = re.compile(rb"\ntransfer-encoding:[ \t]*([^\r\n]*)", re.IGNORECASE)
_KNOWN_CODINGS: Final = frozenset(("chunked", "gzip", "x-gzip", "deflate", "compress", "identity"))
_MAX_CONTENT_LENGTH_DIGITS: Final = 18  # below 2**63: no overflow anywhere downstream


def status_for_bad_method(data: bytes) -> int:
    """llhttp knows a fixed list of methods: a well-formed unknown one is 501."""
    return 501 if abnf.METHOD_SP.match(data) else 400


def protocol_error_from_llhttp(reason: str, head: bytes) -> ProtocolError:
    """Map an llhttp error on `head` (the request's bytes so far) to its status."""
    if reason == "Invalid HTTP version" and abnf.REQUEST_LINE.match(head):
        return ProtocolError(505, reason)  # RFC 9110 §15.6.6: well-formed, unsupported
    if reason == "Request has invalid `Transfer-Encoding`":
        # The final coding is not chunked: 501 if a coding is unknown to us
        # (RFC 9112 §6.1), else 400 (the body length cannot be determined).
        values = _TE_FIELD.findall(head)
        codings = [c for value in values for c in members(value.decode("latin-1"))]
        if any(c and c not in _KNOWN_CODINGS for c in codings):
            return ProtocolError(501, reason)
    return BadRequest(reason)


def request_line_complete(head: bytes | bytearray) -> bool:
    """Whether `head` holds a whole request line, so its error can be judged."""
    return b"\n" in head


# Host values already found valid: a server sees the same few over and over.
# Bounded (cache.py).
_GOOD_HOSTS: Final[dict[str, bool]] = {}
_GOOD_HOSTS_MAX: Final = 256
_SINGLE: Final = {HOST: "Host", CONTENT_LENGTH: "Content-Length", CONTENT_TYPE: "Content-Type"}
# Origin-form targets already checked -> (path, query): most requests ask for
# one of a few URLs. Only short targets are kept, in a bounded table (cache.py).
_ORIGIN_TARGETS: Final[dict[bytes, tuple[bytes, bytes]]] = {}
_TARGETS_MAX: Final = 512
_TARGET_LEN_MAX: Final = 256


def check_head(req: Request, framing: Mapping[str, str], repeated: Set[str]) -> None:
    """Validate a complete head; fill in path, query and body framing.

    `framing` holds the values of the fields that frame the request, by
    environ key, repeated ones joined; `repeated` says which were repeated
    (fields.py).
    """
    target = req.target
    known = _ORIGIN_TARGETS.get(target)
    if known is not None:
        req.path, req.query = known
    else:
        _check_target(req)
        if target[:1] == abnf.ORIGIN_FORM_START and len(target) <= _TARGET_LEN_MAX:  # remember
            remember(_ORIGIN_TARGETS, target, (req.path, req.query), _TARGETS_MAX)
    for key in repeated:
        if key in _SINGLE:  # RFC 9110 §7.2, RFC 9112 §6.3, RFC 9110 §8.3
            raise BadRequest(f"more than one {_SINGLE[key]} field")
    host = framing.get(HOST)
    if host is None:
        if req.version == "HTTP/1.1":
            raise BadRequest("HTTP/1.1 needs exactly one Host field")
    elif host not in _GOOD_HOSTS:
        if not abnf.HOST.fullmatch(host):
            raise BadRequest("invalid Host field")
        remember(_GOOD_HOSTS, host, True, _GOOD_HOSTS_MAX)
    expect = framing.get(EXPECT)
    if expect is not None and req.version == "HTTP/1.1":
        # RFC 9110 §10.1.1: only HTTP/1.1 clients wait for 100 Continue.
        req.expect_continue = "100-continue" in members(expect)
    transfer_encoding = framing.get(TRANSFER_ENCODING)
    content_length = framing.get(CONTENT_LENGTH)
    if transfer_encoding is not None:
        _check_transfer_encoding(req, transfer_encoding, content_length)
    elif content_length is not None:
        if (
            not abnf.CONTENT_LENGTH.fullmatch(content_length)
            or len(content_length) > _MAX_CONTENT_LENGTH_DIGITS
        ):
            raise BadRequest("invalid Content-Length")
        req.content_length = int(content_length)
    if req.content_length is None and not req.chunked:
        # No framing header: the body is empty (RFC 9112 §6.3 rule 7), and
        # llhttp has already ended the message or will at once.
        req.content_length = 0
        req.expect_continue = False


def _check_transfer_encoding(req: Request, value: str, content_length: str | None) -> None:
    if req.version != "HTTP/1.1":
        raise BadRequest("Transfer-Encoding on an HTTP/1.0 request")
    if content_length is not None:
        raise BadRequest("Content-Length together with Transfer-Encoding")
    codings = members(value)
    for coding in codings:
        if coding not in _KNOWN_CODINGS:
            raise ProtocolError(501, "unsupported transfer coding")
    if codings[-1] != "chunked" or codings.count("chunked") != 1:
        raise BadRequest("Transfer-Encoding must end in a single chunked")
    if len(codings) > 1:
        # wsgid does not decode other codings; passing them to the app
        # undecoded would change the meaning of the body.
        raise ProtocolError(501, "unsupported transfer coding")
    req.chunked = True


def _check_target(req: Request) -> None:
    target = req.target
    if target[:1] == abnf.ORIGIN_FORM_START:
        path, sep, query = target.partition(b"?")
        req.path = path.partition(b"#")[0] if b"#" in path else path
        req.query = query.partition(b"#")[0] if sep and b"#" in query else query
        return
    if target == abnf.ASTERISK_FORM:
        if req.method != "OPTIONS":
            raise BadRequest("asterisk-form target only with OPTIONS")
        req.path = target
        return
    if req.method == "CONNECT":
        raise ProtocolError(405, "CONNECT is not served")
    lowered = target[:8].lower()  # as long as the longest scheme prefix
    if lowered.startswith(abnf.ABSOLUTE_FORM_SCHEMES):
        # RFC 9112 §3.2.2: absolute-form; its authority replaces Host.
        rest = target.split(b"://", 1)[1]
        match = abnf.AUTHORITY_END.search(rest)
        cut = match.start() if match else len(rest)
        authority, tail = rest[:cut], rest[cut:]
        if (
            not authority
            or b"@" in authority
            or not abnf.HOST.fullmatch(authority.decode("latin-1"))
        ):
            raise BadRequest("absolute-form target without a valid host")  # RFC 9110 §4.2.4
        tail = tail.partition(b"#")[0]
        path, _, query = tail.partition(b"?")
        req.authority = authority
        req.path = path or b"/"
        req.query = query
        return
    raise BadRequest("invalid request target")
