"""Structured logs, trace context and operational HTTP endpoints shared by the service's processes."""
