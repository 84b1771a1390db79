"""Fixtures of the engine integration tests: `db_url` lives in tests/conftest.py."""
