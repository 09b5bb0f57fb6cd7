"""JSON log lines carrying the domain identifiers operators search by (RFC-0014I §11).

Pass them with `extra=`: `log.info("released", extra={"execution_id": ..., "ticket_id": ...})`;
every field in `CONTEXT_FIELDS` that is set on the record is emitted.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

CONTEXT_FIELDS = (
    "correlation_id",
    "trace_id",
    "span_id",
    "principal",
    "claimed_requested_by",
    "execution_id",
    "proposal_id",
    "version_no",
    "ticket_id",
    "external_order_id",
    "command_id",
    "event_id",
    "topic",
    "partition",
    "offset",
    "instance_id",
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
