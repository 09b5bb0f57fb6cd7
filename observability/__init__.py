"""Structured logs and operational HTTP endpoints shared by the service's processes."""
