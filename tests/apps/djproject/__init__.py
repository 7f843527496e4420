"""A minimal real Django project (no database) served by wsgid in the integration tests."""
