"""Types of the C renderers of the json and logfmt access records (records.c)."""

from typing import Any

def json_record(
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

logfmt_record = json_record  # the same arguments and result
