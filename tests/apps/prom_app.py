"""An app with its own prometheus_client metrics in multiprocess mode, as its docs describe.

Routes:
- `/hit`: counts one hit (`app_hits_total`, a counter), and says this worker is alive
  (`app_workers_live`, a gauge summed over live workers: `multiprocess_mode="livesum"`);
- `/dir`: the multiprocess directory the app was given (`PROMETHEUS_MULTIPROC_DIR`);
- anything else: 200 with the worker's pid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge

HITS = Counter("app_hits", "Hits the app served.")
LIVE = Gauge("app_workers_live", "Workers that served a hit.", multiprocess_mode="livesum")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/hit":
        HITS.inc()
        LIVE.set(1)
    if path == "/dir":
        body = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").encode()
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
