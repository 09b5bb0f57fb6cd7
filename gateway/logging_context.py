"""The request's correlation id, principal and trace ids on every log line written while the
request is handled.

The edge middleware sets `correlation_id_var` (and the authentication middleware
`principal_var`) for the request's task; `CorrelationIdFilter`, installed on the log handlers,
copies them onto every record that does not carry them already, and
`observability.tracing.TraceContextFilter` adds the current span's `trace_id` / `span_id`, so
`observability.json_logging` emits them with the other context fields.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from observability.tracing import TraceContextFilter

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
principal_var: ContextVar[str | None] = ContextVar("principal", default=None)


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            correlation_id = correlation_id_var.get()
            if correlation_id is not None:
                record.correlation_id = correlation_id
        if getattr(record, "principal", None) is None:
            principal = principal_var.get()
            if principal is not None:
                record.principal = principal
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filters to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        for kind in (CorrelationIdFilter, TraceContextFilter):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())
