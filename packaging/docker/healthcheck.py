"""Container health check of the wsgid image: is the server answering HTTP?

Sends `GET /` to the port wsgid listens on inside the container (the first TCP address of
WSGID_BIND, else $PORT, else 8000) and exits 0 on any HTTP response below 500: the check is
about the server being up and its workers answering, not about what the application serves at
`/`. Set WSGID_HEALTHCHECK_PATH for another path.
"""

from __future__ import annotations

import http.client
import os
import sys


def target() -> tuple[str, int]:
    for entry in os.environ.get("WSGID_BIND", "").split(","):
        entry = entry.strip()
        if not entry or entry.startswith(("unix:", "fd://", "systemd:")):
            continue
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        if port.isdigit():
            if host in ("", "0.0.0.0", "::"):
                host = "127.0.0.1" if host != "::" else "::1"
            return host, int(port)
    return "127.0.0.1", int(os.environ.get("PORT") or 8000)


def main() -> int:
    host, port = target()
    path = os.environ.get("WSGID_HEALTHCHECK_PATH", "/")
    conn = http.client.HTTPConnection(host, port, timeout=4)
    try:
        conn.request("GET", path, headers={"User-Agent": "wsgid-healthcheck"})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"healthcheck: http://{host}:{port}{path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status >= 500:
        print(f"healthcheck: http://{host}:{port}{path}: status {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
