"""Types of the C renderer of the JSON access record (fastjson.c)."""

from typing import Any

def access_record(
    timestamp: str,
    environ: dict[str, Any],
    remote_user: str | None,
    method: str,
    path: bytes,
    query: bytes,
    protocol: str,
    status: int,
    bytes_sent: int,
    request_bytes: int,
    duration_us: int,
    pid: str,
    /,
) -> str | None: ...
