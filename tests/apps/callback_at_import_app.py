"""An app module whose import waits inside a weakref callback (a stand-in for importlib's own).

Python runs a signal handler's code wherever the main thread is; an exception the handler
raises inside a weakref callback is only printed ("Exception ignored in: ...") and the
callback's caller goes on. importlib's module locks are freed through such callbacks, so a
QUIT that reaches a worker in the middle of an import can land there. This module makes that
moment last: its import drops the last reference to an object whose callback records
`in-callback <pid>` in TESTAPP_IMPORT_LOG and then sleeps for a minute.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable
from typing import Any

from _importlog import record_import

record_import(__name__)


class _Held:
    pass


def _wait_in_callback(_ref: object) -> None:
    record_import("in-callback")
    time.sleep(60)


_held = _Held()
_ref = weakref.ref(_held, _wait_in_callback)
del _held  # the callback runs here, inside the import


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
