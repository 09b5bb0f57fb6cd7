"""The request's correlation id on every log line written while the request is handled.

The edge middleware sets `correlation_id_var` for the request's task; `CorrelationIdFilter`,
installed on the log handlers, copies it onto every record that does not carry one already,
so `observability.json_logging` emits it with the other context fields.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            correlation_id = correlation_id_var.get()
            if correlation_id is not None:
                record.correlation_id = correlation_id
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, CorrelationIdFilter) for f in handler.filters):
            handler.addFilter(CorrelationIdFilter())
