"""The RFC 9 integration port, ``ExecutionProvider``, and the values it answers with.

Adapters implement it: the processor's Kafka provider (`processor.kafka_provider`), the
in-process ``mock_oms.provider.MockExecutionProvider`` for tests, the FIX adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from execution_domain.ticket_state import TicketState
from execution_domain.tickets import Ticket

__all__ = [
    "CancelResult",
    "ExecutionProvider",
    "OrderStatus",
    "Status",
    "SubmitResult",
    "TicketSubmission",
]


@dataclass(frozen=True, slots=True)
class TicketSubmission:
    ticket_id: str
    accepted: bool  # the OMS took the order (its acknowledgement still arrives as ORDER_ACCEPTED)
    external_order_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    execution_id: str
    submissions: tuple[TicketSubmission, ...]

    def for_ticket(self, ticket_id: str) -> TicketSubmission:
        return next(item for item in self.submissions if item.ticket_id == ticket_id)


@dataclass(frozen=True, slots=True)
class CancelResult:
    ticket_id: str
    accepted: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderStatus:
    external_order_id: str
    ticket_id: str
    state: TicketState
    filled_qty: Decimal  # FIX CumQty
    avg_price: Decimal | None  # FIX AvgPx
    reason: str | None = None


Status = OrderStatus  # the RFC's name


@runtime_checkable
class ExecutionProvider(Protocol):
    def submit_tickets(self, execution_id: str, tickets: Sequence[Ticket]) -> SubmitResult: ...

    def cancel_ticket(self, ticket_id: str) -> CancelResult: ...

    def fetch_status(self, external_order_id: str) -> OrderStatus: ...
