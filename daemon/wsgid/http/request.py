"""The record of one request, as the parser fills it in and the exchange reads it.

Owns: `Request`, the head of one request (method, target, version, fields,
framing, what a trusted proxy said of it) and its body bytes as they arrive.
`parser.py` creates and fills it, `policy.py` and `forwarded.py` judge and
complete it, and `environ.py`, `body.py`, `response.py` and the workers read
it; it depends on none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wsgid.http import fields
from wsgid.http.abnf import OWS_BYTES


class Request:
    """One parsed request: its head, and its body bytes as they arrive."""

    # Defaults are class attributes: a request sets only what differs, and
    # one is built for every request.
    method = ""
    target = b""
    path = b""
    query = b""
    version = "HTTP/1.1"
    # The client's part of the keep-alive rule (response.py): False after
    # `Connection: close`, for HTTP/1.0 without `Connection: keep-alive`
    # (llhttp reads both), and for an Upgrade request.
    keep_alive = True
    content_length: int | None = None
    chunked = False
    expect_continue = False
    upgrade = False
    authority = b""  # the host of an absolute-form target (RFC 9112 §3.2.2)
    body_complete = False
    body_error: Exception | None = None  # why the body could not be completed
    body_received = 0
    # Set once nobody will read the rest of the body (the response was
    # sent): arriving bytes are then counted and dropped.
    discard_body = False

    # The head's field lines as sent (set by the parser when there are any).
    field_lines: Sequence[bytes] = ()
    # The fields as the environ shows them (`HTTP_*`, CONTENT_*): latin-1
    # text, repeated fields joined (fields.py).
    environ: Mapping[str, str] = fields.NO_FIELDS
    # The forwarder headers (SCRIPT_NAME, PATH_INFO, REMOTE_USER) sent under those
    # underscore names, which the environ never shows as fields; None: none sent.
    underscored: Mapping[str, str] | None = None
    # What a trusted proxy's forwarded headers change in the environ (`forwarded.py`):
    # wsgi.url_scheme, REMOTE_ADDR, SCRIPT_NAME, ...; None: nothing.
    overrides: dict[str, str] | None = None
    # The request id a trusted proxy sent (`request_id_header`); None: none to adopt.
    incoming_id: str | None = None

    # The body bytes received and not yet read by the app. A body arriving in
    # one piece stays the bytes object llhttp handed over, so the app's read()
    # gets it without a copy; a second piece makes it a bytearray.
    body: bytes | bytearray = b""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The fields as sent, as (name, value without OWS) pairs (for hooks)."""
        pairs = (line.partition(b":") for line in self.field_lines)
        return [(name, value.strip(OWS_BYTES)) for name, _, value in pairs]
