"""The access-log formats: the ones wsgid knows by name, and gunicorn's default atom string.

Owns the one table of access formats. The logs build each one's pipeline from it
(`wsgid.logs.access`); the settings read it for the `access_log_format` setting: its default,
what it accepts, its validation, `--help`, the docs and the JSON Schema.

Why it is not in `wsgid/logs/`: importing any module there first imports the package, and
with it the whole logging stack (structlog, the sinks: about a quarter of the time the
settings take to import). The settings need this table when they are defined, and
`wsgid --help` or a configuration error should not pay for logs they never write.
"""

from __future__ import annotations

# Rendered by wsgid's own renderers (`access.py`); any other value is a gunicorn string of
# %(x)s atoms (`atoms.py`).
NAMED_FORMATS = ("json", "logfmt", "console", "combined")

# gunicorn's default `access_log_format`, and so wsgid's: a gunicorn user's log parsers
# keep working.
GUNICORN_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
