"""The HTTP grammar wsgid checks by itself, each rule under the ABNF it stands for.

Owns: the rules of RFC 9110 ("HTTP Semantics") and RFC 9112 ("HTTP/1.1")
that wsgid tests with its own code rather than leaving them to llhttp: the
token (response field names; the methods llhttp does not know), optional
whitespace and lists, the field values and the status an application hands
to `start_response`, the request line as a whole, the Host field,
Content-Length, and the shapes of a request target. Each is written here
once; `policy.py` (requests), `response.py` (responses), `fields.py` and
`request.py` read it here. Where wsgid takes more or less than the grammar
allows, the comment says so.

A rule is text; the patterns that run over request bytes are compiled from
the same text, so that a rule has one spelling for both.
"""

from __future__ import annotations

import re
from typing import Final

# RFC 9110 §5.6.2:
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*"
#         / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#         / DIGIT / ALPHA
TCHAR: Final = r"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN: Final = re.compile(TCHAR + "+")

# RFC 9110 §5.6.3:
#   OWS = *( SP / HTAB )
# As the characters `strip()` takes off either end of a value.
OWS: Final = " \t"
OWS_BYTES: Final = b" \t"


# RFC 9110 §5.6.1:
#   #element => [ element ] *( OWS "," OWS [ element ] )
def members(value: str) -> list[str]:
    """The members of a list-valued field, lower-cased (empty ones included).

    The lists wsgid reads (transfer codings, expectations) are
    case-insensitive, so they are compared lower-cased.
    """
    return [member.strip(OWS).lower() for member in value.split(",")]


# RFC 9110 §5.5:
#   field-value   = *field-content
#   field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
#   field-vchar   = VCHAR / obs-text
#   obs-text      = %x80-FF
# One character a value may not hold: a control other than HTAB, or DEL.
# (Whitespace at either end, which the grammar leaves outside the value, is
# sent as the application gave it.)
FIELD_VALUE_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9112 §4, the part after HTTP-version, which is what PEP 3333's status is:
#   status-line   = HTTP-version SP status-code SP [ reason-phrase ]
#   status-code   = 3DIGIT
#   reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
# The code's first digit may not be 0; the reason may hold anything but what
# would end the line or the head early (CR, LF, NUL). The code alone ("404", without
# the SP) is accepted too, as gunicorn serves it: the reason is optional, and the
# response says the code's own (`response._status_line`).
STATUS: Final = re.compile(r"[1-9][0-9][0-9](?: [^\r\n\x00]*)?")

# RFC 9112 §3 and §2.3:
#   request-line = method SP request-target SP HTTP-version
#   method       = token
#   HTTP-version = HTTP-name "/" DIGIT "." DIGIT
#   HTTP-name    = %s"HTTP"
# Whole, with CRLF, any version: when llhttp refuses the version of such a
# line, the version is well-formed and only not served (505, not 400). The
# target is anything without SP here; llhttp judges it.
REQUEST_LINE: Final = re.compile((TCHAR + r"+ [^ ]+ HTTP/[0-9]\.[0-9]\r\n").encode())
# A method of token shape, and the SP after it: llhttp knows a fixed list of
# methods, and refuses a well-formed one it does not know the same way as a
# malformed one (501 against 400).
METHOD_SP: Final = re.compile((TCHAR + "+ ").encode())

# RFC 9110 §7.2 and RFC 3986 §3.2.2, §3.2.3:
#   Host        = uri-host [ ":" port ]
#   uri-host    = IP-literal / IPv4address / reg-name
#   IP-literal  = "[" ( IPv6address / IPvFuture ) "]"
#   reg-name    = *( unreserved / pct-encoded / sub-delims )
#   unreserved  = ALPHA / DIGIT / "-" / "." / "_" / "~"
#   pct-encoded = "%" HEXDIG HEXDIG
#   sub-delims  = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
#   port        = *DIGIT
# An IP-literal is taken as hex digits, ":" and "." in brackets, a "%" without
# looking at what follows it; an IPv4address is a reg-name too.
HOST: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?")

# RFC 9110 §8.6:
#   Content-Length = 1*DIGIT
CONTENT_LENGTH: Final = re.compile(r"[0-9]+")

# RFC 9112 §3.2:
#   request-target = origin-form / absolute-form / authority-form / asterisk-form
#
# §3.2.1, and RFC 9110 §4.1:
#   origin-form   = absolute-path [ "?" query ]
#   absolute-path = 1*( "/" segment )
# What the target begins with; the rest llhttp has checked. (A "#" fragment,
# which no form has, is cut off rather than refused.)
ORIGIN_FORM_START: Final = b"/"

# §3.2.4:
#   asterisk-form = "*"
ASTERISK_FORM: Final = b"*"

# §3.2.2, and RFC 9110 §4.2.1, §4.2.2:
#   absolute-form = absolute-URI
#   http-URI      = "http" "://" authority path-abempty [ "?" query ]
#   https-URI     = "https" "://" authority path-abempty [ "?" query ]
# The schemes wsgid serves, as they begin a target lower-cased (a scheme is
# case-insensitive, RFC 3986 §3.1); the longest is 8 bytes.
ABSOLUTE_FORM_SCHEMES: Final = (b"http://", b"https://")
# RFC 3986 §3.2:
#   authority = [ userinfo "@" ] host [ ":" port ]
# It ends where path-abempty ("/"), the query ("?") or a fragment ("#") begins.
AUTHORITY_END: Final = re.compile(rb"[/?#]")

# §3.2.3:
#   authority-form = uri-host ":" port
# Only for CONNECT, which wsgid does not serve: such a request is refused by
# its method, whatever its target.
