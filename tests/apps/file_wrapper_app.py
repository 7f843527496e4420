"""Answers every request with this very file through `wsgi.file_wrapper`, opened so that
reading it in Python gives its bytes upper-cased: sendfile(2) sends the bytes on disk, a
worker that reads and sends the file sends them upper-cased. So the body says which way the
file went (the `sendfile` setting)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any


class Shouting(io.FileIO):
    """A real file (sendfile can send it) whose read() upper-cases what it returns."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        return data.upper() if data else b""


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](Shouting(__file__, "rb"))
    return wrapper
