"""`wsgi.input`: the request body as a PEP 3333 input stream.

Owns: handing the app the body bytes of one request, whether they were read
before the app was called or still have to arrive. The stream never reads past
its own body (the parser files pipelined bytes under the next request), and a
body that cannot be completed (peer gone, bad chunk framing, timeout) raises
`BodyError` (from `fill`) instead of pretending the body ended.

The stream does not touch sockets itself: when it needs more bytes it calls
`fill()`, supplied by the worker, which reads once from the connection and
feeds the parser (blocking with the worker's timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from wsgid.http.errors import BodyError
from wsgid.http.request import Request

Fill = Callable[[], None]


class InputStream:
    """Read-only binary stream over one request's body."""

    __slots__ = ("_before_first_read", "_fill", "_pos", "_req")

    def __init__(
        self, req: Request, fill: Fill, before_first_read: Callable[[], None] | None
    ) -> None:
        self._req = req
        self._fill = fill
        self._pos = 0
        # Sends `100 Continue` the first time the app asks for body bytes.
        self._before_first_read = before_first_read

    def _more(self) -> bool:
        """Pull more body bytes; False once the body is complete and consumed."""
        req = self._req
        if req.body_complete:
            return False
        if self._before_first_read is not None:
            hook, self._before_first_read = self._before_first_read, None
            hook()
        try:
            self._fill()  # raises BodyError when the body cannot be completed
        except BodyError as exc:
            # Remembered so that no 2xx goes out even if the app catches it.
            req.body_error = exc
            raise
        return True

    def _take(self, n: int) -> bytes:
        req = self._req
        buf = req.body
        if n >= len(buf):  # all of it (a whole small body, usually)
            data = buf if type(buf) is bytes else bytes(buf)  # bytes: no copy at all
            req.body = b""
        elif not isinstance(buf, bytearray):
            data = buf[:n]
            req.body = bytearray(memoryview(buf)[n:])  # later reads cut it in place
        else:
            with memoryview(buf) as view:  # one copy, not a bytearray slice and then bytes
                data = bytes(view[:n])
            del buf[:n]
        self._pos += len(data)
        return data

    # `_more()` may replace `req.body` (bytes -> bytearray): read it afresh after each.

    def read(self, size: int | None = -1) -> bytes:
        req = self._req
        if size is None or size < 0:
            while self._more():
                pass
            return self._take(len(req.body))
        while len(req.body) < size and self._more():
            pass
        return self._take(size)

    def read1(self, size: int | None = -1) -> bytes:
        req = self._req
        if not req.body:
            self._more()
        return self._take(len(req.body) if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        req = self._req
        limit = -1 if size is None else size
        scanned = 0
        while True:
            buf = req.body
            end = buf.find(b"\n", scanned)
            if end >= 0:
                n = end + 1
                return self._take(n if limit < 0 else min(n, limit))
            if 0 <= limit <= len(buf):
                return self._take(limit)
            scanned = len(buf)
            if not self._more():
                return self._take(len(buf))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        # None, as 0 or less, is no hint (io.IOBase.readlines).
        limit = -1 if hint is None else hint
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < limit <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """PEP 3333 apps must not close wsgi.input; tolerate it anyway."""


class EmptyInput:
    """`wsgi.input` of a request without a body (most requests).

    Reading an empty body changes nothing, so one stateless instance serves
    every such request and none is built per request.
    """

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def read1(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def tell(self) -> int:
        return 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """PEP 3333 apps must not close wsgi.input; tolerate it anyway."""


EMPTY_INPUT: Final = EmptyInput()
