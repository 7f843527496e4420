"""gunicorn's recipe for keeping health checks out of the access log, for test_access_log.py.

`NoHealth` is a `logging.Filter` that refuses access lines for `/health`; `on_starting` puts
it on the `gunicorn.access` logger, as gunicorn users' hooks do (a `logconfig_dict` may name
it as a filter of that logger instead).
"""

from __future__ import annotations

import logging
from typing import Any


class NoHealth(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "/health" not in record.getMessage()


def on_starting(server: Any) -> None:
    logging.getLogger("gunicorn.access").addFilter(NoHealth())
