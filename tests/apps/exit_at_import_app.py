"""An app module that ends its process, or tries to, while being imported.

How it ends is read from TESTAPP_EXIT_AT_IMPORT, else from the file `exit-at-import` in
TESTAPP_MARKERS (so a test can make only the workers forked from now on fail); with neither,
it imports and serves normally:

- `sys_exit_0`, `sys_exit_msg`: `sys.exit(0)`, `sys.exit("exit_at_import_app says no")`;
- `os_exit_0`, `os_exit_1`: `os._exit(0)`, `os._exit(1)` (no Python clean-up at all);
- `keyboard_interrupt`: `raise KeyboardInterrupt`;
- `segfault`: a real segmentation fault (a read of address 0), without a core file.

Every import is recorded (TESTAPP_IMPORT_LOG, see README.md).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Iterable
from typing import Any

from _importlog import record_import

record_import(__name__)


def _mode() -> str:
    mode = os.environ.get("TESTAPP_EXIT_AT_IMPORT", "")
    markers = os.environ.get("TESTAPP_MARKERS")
    if not mode and markers:
        try:
            with open(os.path.join(markers, "exit-at-import")) as f:
                mode = f.read().strip()
        except FileNotFoundError:
            pass
    return mode


MODE = _mode()
if MODE == "sys_exit_0":
    sys.exit(0)
elif MODE == "sys_exit_msg":
    sys.exit("exit_at_import_app says no")
elif MODE == "os_exit_0":
    os._exit(0)
elif MODE == "os_exit_1":
    os._exit(1)
elif MODE == "keyboard_interrupt":
    raise KeyboardInterrupt
elif MODE == "segfault":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    ctypes.string_at(0)
elif MODE:
    raise ValueError(f"unknown TESTAPP_EXIT_AT_IMPORT mode {MODE!r}")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
