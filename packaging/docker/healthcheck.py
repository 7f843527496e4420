"""Container health check of the wsgid image: is the server answering HTTP?

With a side listener (WSGID_METRICS_BIND, a TCP address) it asks the master's `GET /livez`
there and is healthy on 200 only: no application code runs, and a busy worker pool does not
make a live server look dead. Otherwise it sends `GET /` to the port wsgid listens on inside
the container (the first TCP address of WSGID_BIND, else $PORT, else 8000) and is healthy on
any HTTP response below 500: the check is about the server being up and its workers
answering, not about what the application serves at `/`. Set WSGID_HEALTHCHECK_PATH for
another path.
"""

from __future__ import annotations

import http.client
import os
import sys


def tcp_address(variable: str) -> tuple[str, int] | None:
    """The first TCP address of a bind variable, a wildcard host made loopback."""
    for entry in os.environ.get(variable, "").split(","):
        entry = entry.strip()
        if not entry or entry.startswith(("unix:", "fd://", "systemd:")):
            continue
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        if port.isdigit():
            if host in ("", "0.0.0.0", "::"):
                host = "127.0.0.1" if host != "::" else "::1"
            return host, int(port)
    return None


def target() -> tuple[str, int, str, bool]:
    """(host, port, path, whether only 200 is healthy)."""
    side = tcp_address("WSGID_METRICS_BIND")
    if side is not None:
        return side[0], side[1], "/livez", True
    host, port = tcp_address("WSGID_BIND") or ("127.0.0.1", int(os.environ.get("PORT") or 8000))
    return host, port, os.environ.get("WSGID_HEALTHCHECK_PATH", "/"), False


def main() -> int:
    host, port, path, exact = target()
    conn = http.client.HTTPConnection(host, port, timeout=4)
    try:
        conn.request("GET", path, headers={"User-Agent": "wsgid-healthcheck"})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"healthcheck: http://{host}:{port}{path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status >= 500 or (exact and status != 200):
        print(f"healthcheck: http://{host}:{port}{path}: status {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
