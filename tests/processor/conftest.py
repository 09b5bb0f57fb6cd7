"""Fixtures of the processor tests: `harness` comes from tests/conftest.py."""
