"""Protocol errors and the status codes they map to.

Owns: the exception type every parsing or policy rule raises, and the canned
error responses sent for them (with `Date`, from the worker's `date.Dates`). A `ProtocolError`
always ends the connection: after the error response the peer's byte stream
can no longer be trusted.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from wsgid.http.date import Dates

if TYPE_CHECKING:
    from wsgid.http.response import Response


def reason_phrase(status: int) -> str:
    """The standard reason phrase of `status`; "" for a code that has none (299)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class ProtocolError(Exception):
    """The client's bytes break HTTP/1.1; answer with `status` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BadRequest(ProtocolError):
    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


class BodyError(OSError):
    """Raised from `wsgi.input` when the request body cannot be completed.

    An OSError so that frameworks which treat a broken upload like a broken
    pipe (Django, Werkzeug) handle it without a special case. `status` is the
    code to answer with when the client is still there (bad framing), None
    when it left.
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class ServerExit(SystemExit):
    """The server's own exit, raised into whatever code runs when it comes (a fast stop's
    signal handler, the application included): an exchange lets it through, whereas the
    application's own `sys.exit()` is only its request failing (500)."""


class Interrupted(BaseException):
    """Thrown by a worker into a request it ends from outside (a greenlet past
    `request_timeout`). Not an Exception: the app's `except Exception` must not swallow it.

    The exchange it ends puts the app's `Response` on it on the way out (`response`; None when
    it came before or after the app's call), so that the worker can tell the post_request hook
    what the client got in its place, once."""

    response: Response | None = None


# The parts of each canned response that never change, built on first use:
# (status line and fields up to Date, body). At most a few dozen statuses.
_PREBUILT: dict[tuple[int, bool, bool], tuple[bytes, bytes]] = {}


def error_response(
    status: int, dates: Dates, *, keep_alive: bool = False, head: bool = False
) -> bytes:
    """A complete, small plain-text response for `status`; closes by default.

    `head`: the request was HEAD, so the response carries no content
    (RFC 9110 §9.3.2) though its Content-Length says what GET would get.
    It carries `Date` and `Server` as every response does (`dates`); the
    rest is built once per status, so a flood of bad requests costs a dict
    lookup and a join each.
    """
    key = (status, keep_alive, head)
    parts = _PREBUILT.get(key)
    if parts is None:
        phrase = reason_phrase(status)
        body = f"{status} {phrase}\n".encode("ascii")
        connection = b"keep-alive" if keep_alive else b"close"
        start = (
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: %s\r\n"
            % (status, phrase.encode("ascii"), len(body), connection)
        )
        parts = _PREBUILT[key] = (start, b"" if head else body)
    start, body = parts
    return start + dates.head_end() + body
