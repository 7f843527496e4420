"""Test support: start real wsgid processes and inspect them (no mocks)."""
