"""Order events from the OMS (RFC 5.4): what an adapter or the webhook hands the domain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from execution_domain.canonical import decimal_from_str, decimal_to_str, format_timestamp, parse_timestamp

__all__ = ["EventDetails", "OrderEvent", "OrderEventType", "ReportKey"]


class OrderEventType(StrEnum):
    ORDER_ACCEPTED = "ORDER_ACCEPTED"
    ORDER_REJECTED = "ORDER_REJECTED"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCEL_REJECTED = "CANCEL_REJECTED"


def _optional_decimal(data: Mapping[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None else decimal_from_str(value)


@dataclass(frozen=True, slots=True)
class EventDetails:
    """Per fill (FIX LastQty/LastPx): ``fill_id``, ``last_qty``, ``last_price``.
    Cumulative (FIX CumQty/AvgPx): ``filled_qty``, ``avg_price``.
    A report with ``fill_id`` is read per fill; its cumulative fields, if any, are informational.
    """

    fill_id: str | None = None
    last_qty: Decimal | None = None
    last_price: Decimal | None = None
    filled_qty: Decimal | None = None
    avg_price: Decimal | None = None
    reason: str | None = None

    @property
    def is_per_fill(self) -> bool:
        return self.fill_id is not None or self.last_qty is not None or self.last_price is not None

    @property
    def is_cumulative(self) -> bool:
        return not self.is_per_fill and self.filled_qty is not None

    def to_primitive(self) -> dict[str, Any]:
        # Absent fields are omitted so the wire form matches RFC 5.4's example.
        out: dict[str, Any] = {}
        if self.fill_id is not None:
            out["fill_id"] = self.fill_id
        for key in ("last_qty", "last_price", "filled_qty", "avg_price"):
            value = getattr(self, key)
            if value is not None:
                out[key] = decimal_to_str(value)
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any] | None) -> EventDetails:
        data = data or {}
        return cls(
            fill_id=data.get("fill_id"),
            last_qty=_optional_decimal(data, "last_qty"),
            last_price=_optional_decimal(data, "last_price"),
            filled_qty=_optional_decimal(data, "filled_qty"),
            avg_price=_optional_decimal(data, "avg_price"),
            reason=data.get("reason"),
        )


NO_DETAILS = EventDetails()


@dataclass(frozen=True, slots=True)
class ReportKey:
    """The content of a report that decides duplicate (same) versus reused event id (different)."""

    event_type: OrderEventType
    external_order_id: str | None
    details: EventDetails

    def to_primitive(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type.value,
            "external_order_id": self.external_order_id,
            "details": self.details.to_primitive(),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> ReportKey:
        return cls(
            OrderEventType(data["event_type"]),
            data["external_order_id"],
            EventDetails.from_primitive(data["details"]),
        )


@dataclass(frozen=True, slots=True)
class OrderEvent:
    event_id: str  # FIX ExecID: unique per report for the order's life; the dedup key
    execution_id: str
    ticket_id: str
    source: str
    event_type: OrderEventType
    external_order_id: str | None
    occurred_at: datetime
    details: EventDetails = NO_DETAILS

    @property
    def report_key(self) -> ReportKey:
        # source and occurred_at are delivery metadata: a resend may restamp them.
        return ReportKey(self.event_type, self.external_order_id, self.details)

    def to_primitive(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "execution_id": self.execution_id,
            "ticket_id": self.ticket_id,
            "source": self.source,
            "event_type": self.event_type.value,
            "external_order_id": self.external_order_id,
            "occurred_at": format_timestamp(self.occurred_at),
            "details": self.details.to_primitive(),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> OrderEvent:
        return cls(
            event_id=data["event_id"],
            execution_id=data["execution_id"],
            ticket_id=data["ticket_id"],
            source=data["source"],
            event_type=OrderEventType(data["event_type"]),
            external_order_id=data.get("external_order_id"),
            occurred_at=parse_timestamp(data["occurred_at"]),
            details=EventDetails.from_primitive(data.get("details")),
        )
