"""Settings of the test Django project: production-like (DEBUG off), no database."""

from __future__ import annotations

SECRET_KEY = "wsgid-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djproject.urls"
WSGI_APPLICATION = "djproject.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# With DEBUG off Django logs request errors nowhere by default; production projects send them
# to stderr, which under wsgid is the error log. The tests look for the traceback there.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
