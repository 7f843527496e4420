"""Record one import of a test app module (see README.md: TESTAPP_IMPORT_LOG)."""

from __future__ import annotations

import os


def record_import(module: str) -> None:
    path = os.environ.get("TESTAPP_IMPORT_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{module} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
