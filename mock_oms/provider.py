"""The RFC 9 ``MockExecutionProvider``: an in-process OMS for tests and demos.

It records every call, follows a per-ticket script (accept, reject, fills, unsolicited
cancel, hold), and queues the OrderEvents a real OMS would send; ``drain_events()`` hands
them over. Its clock is logical (start + n seconds). `mock_oms.engine` plays the same scripts
as a process on the Kafka contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

from execution_domain.events import EventDetails, OrderEvent, OrderEventType
from execution_domain.fills import average_price
from execution_domain.ports import CancelResult, OrderStatus, SubmitResult, TicketSubmission
from execution_domain.ticket_state import TicketState
from execution_domain.tickets import Ticket

__all__ = [
    "MockAccept",
    "MockCall",
    "MockCancel",
    "MockCumulativeFill",
    "MockExecutionProvider",
    "MockFill",
    "MockHold",
    "MockRefuseSubmission",
    "MockReject",
    "MockStep",
]


@dataclass(frozen=True, slots=True)
class MockAccept:
    pass


@dataclass(frozen=True, slots=True)
class MockReject:
    reason: str = "rejected by mock OMS"


@dataclass(frozen=True, slots=True)
class MockFill:
    """A per-fill report; ``quantity=None`` fills whatever remains."""

    quantity: Decimal | None = None
    price: Decimal = Decimal("1")


@dataclass(frozen=True, slots=True)
class MockCumulativeFill:
    """A cumulative report (CumQty/AvgPx); ``filled_qty=None`` means the whole order."""

    filled_qty: Decimal | None = None
    avg_price: Decimal = Decimal("1")


@dataclass(frozen=True, slots=True)
class MockCancel:
    """An unsolicited cancel (expiry, IOC remainder)."""

    reason: str = "cancelled by mock OMS"


@dataclass(frozen=True, slots=True)
class MockHold:
    """Stop here; the remaining steps run on ``resume(ticket_id)``."""


@dataclass(frozen=True, slots=True)
class MockRefuseSubmission:
    """Refuse the order at submission: no external order id, no events."""

    reason: str = "refused by mock OMS"


MockStep: TypeAlias = (
    MockAccept | MockReject | MockFill | MockCumulativeFill | MockCancel | MockHold | MockRefuseSubmission
)


@dataclass(frozen=True, slots=True)
class MockCall:
    method: str
    args: tuple[Any, ...]


@dataclass(slots=True)
class _MockOrder:
    execution_id: str
    ticket: Ticket
    external_order_id: str
    steps: list[MockStep]
    state: TicketState = TicketState.SUBMITTED
    filled_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state in (TicketState.FILLED, TicketState.CANCELLED, TicketState.REJECTED)


@dataclass
class MockExecutionProvider:
    """In-process ExecutionProvider for tests. Mutable by design (it plays the outside world)."""

    clock_start: datetime
    source: str = "MOCK_OMS"
    default_fill_price: Decimal = Decimal("1")
    calls: list[MockCall] = field(default_factory=list)
    _scripts: dict[str, list[MockStep]] = field(default_factory=dict)
    _orders: dict[str, _MockOrder] = field(default_factory=dict)  # ticket_id -> order
    _queue: list[OrderEvent] = field(default_factory=list)
    _ticks: int = 0
    _sequence: int = 0

    def script(self, ticket_id: str, *steps: MockStep) -> None:
        """What the OMS will do with ``ticket_id`` once submitted (default: accept, fill all)."""
        self._scripts[ticket_id] = list(steps)

    # ExecutionProvider --------------------------------------------------------------------------

    def submit_tickets(self, execution_id: str, tickets: Sequence[Ticket]) -> SubmitResult:
        self.calls.append(MockCall("submit_tickets", (execution_id, tuple(tickets))))
        submissions = []
        for ticket in tickets:
            known = self._orders.get(ticket.ticket_id)
            if known is not None:  # deterministic ticket ids let the OMS deduplicate resubmissions
                submissions.append(TicketSubmission(ticket.ticket_id, True, known.external_order_id))
                continue
            steps = list(self._scripts.get(ticket.ticket_id, [MockAccept(), MockFill(None, self.default_fill_price)]))
            if steps and isinstance(steps[0], MockRefuseSubmission):
                submissions.append(TicketSubmission(ticket.ticket_id, False, None, steps[0].reason))
                continue
            self._sequence += 1
            order = _MockOrder(execution_id, ticket, f"MOCK-{self._sequence:06d}", steps)
            self._orders[ticket.ticket_id] = order
            submissions.append(TicketSubmission(ticket.ticket_id, True, order.external_order_id))
            self._run(order)
        return SubmitResult(execution_id, tuple(submissions))

    def cancel_ticket(self, ticket_id: str) -> CancelResult:
        self.calls.append(MockCall("cancel_ticket", (ticket_id,)))
        order = self._orders.get(ticket_id)
        if order is None:
            return CancelResult(ticket_id, False, "unknown order")
        if order.done:
            self._emit(order, OrderEventType.CANCEL_REJECTED, EventDetails(reason="too late to cancel"))
            return CancelResult(ticket_id, False, "too late to cancel")
        order.steps.clear()
        self._emit(order, OrderEventType.PENDING_CANCEL)
        order.state = TicketState.CANCELLED
        order.reason = "cancelled on request"
        self._emit(order, OrderEventType.CANCELLED, EventDetails(reason=order.reason))
        return CancelResult(ticket_id, True)

    def fetch_status(self, external_order_id: str) -> OrderStatus:
        self.calls.append(MockCall("fetch_status", (external_order_id,)))
        order = next(o for o in self._orders.values() if o.external_order_id == external_order_id)
        return OrderStatus(
            external_order_id=external_order_id,
            ticket_id=order.ticket.ticket_id,
            state=order.state,
            filled_qty=order.filled_qty,
            avg_price=average_price(order.filled_qty, order.notional),
            reason=order.reason,
        )

    # Test controls ------------------------------------------------------------------------------

    def resume(self, ticket_id: str) -> None:
        self._run(self._orders[ticket_id])

    def held(self) -> tuple[str, ...]:
        """Tickets whose script stopped at a MockHold and still has steps to run."""
        return tuple(ticket_id for ticket_id, order in self._orders.items() if order.steps and not order.done)

    def drain_events(self) -> list[OrderEvent]:
        events, self._queue = self._queue, []
        return events

    # Internals ----------------------------------------------------------------------------------

    def _run(self, order: _MockOrder) -> None:
        while order.steps:
            step = order.steps.pop(0)
            if isinstance(step, MockHold):
                return
            self._perform(order, step)

    def _perform(self, order: _MockOrder, step: MockStep) -> None:
        remaining = order.ticket.order_quantity - order.filled_qty
        if isinstance(step, MockAccept):
            order.state = TicketState.ACCEPTED
            self._emit(order, OrderEventType.ORDER_ACCEPTED)
        elif isinstance(step, MockReject):
            order.state, order.reason = TicketState.REJECTED, step.reason
            self._emit(order, OrderEventType.ORDER_REJECTED, EventDetails(reason=step.reason))
        elif isinstance(step, MockFill):
            # Never more than what remains: a scaled-down ticket may be smaller than the script assumed.
            quantity = remaining if step.quantity is None else min(step.quantity, remaining)
            if quantity <= 0:
                return
            order.filled_qty += quantity
            order.notional += quantity * step.price
            complete = order.filled_qty >= order.ticket.order_quantity
            order.state = TicketState.FILLED if complete else TicketState.PARTIAL_FILL
            fill_id = f"{order.external_order_id}-F{self._ticks + 1}"
            self._emit(
                order,
                OrderEventType.FILLED if complete else OrderEventType.PARTIAL_FILL,
                EventDetails(fill_id=fill_id, last_qty=quantity, last_price=step.price),
            )
        elif isinstance(step, MockCumulativeFill):
            whole = order.ticket.order_quantity
            cumulative = whole if step.filled_qty is None else min(step.filled_qty, whole)
            if cumulative <= order.filled_qty:
                return
            order.filled_qty, order.notional = cumulative, cumulative * step.avg_price
            complete = cumulative >= order.ticket.order_quantity
            order.state = TicketState.FILLED if complete else TicketState.PARTIAL_FILL
            self._emit(
                order,
                OrderEventType.FILLED if complete else OrderEventType.PARTIAL_FILL,
                EventDetails(filled_qty=cumulative, avg_price=step.avg_price),
            )
        elif isinstance(step, MockCancel):
            order.state, order.reason = TicketState.CANCELLED, step.reason
            self._emit(order, OrderEventType.CANCELLED, EventDetails(reason=step.reason))

    def _emit(self, order: _MockOrder, event_type: OrderEventType, details: EventDetails | None = None) -> None:
        self._ticks += 1
        self._queue.append(
            OrderEvent(
                event_id=f"{order.external_order_id}-E{self._ticks}",
                execution_id=order.execution_id,
                ticket_id=order.ticket.ticket_id,
                source=self.source,
                event_type=event_type,
                external_order_id=order.external_order_id,
                occurred_at=self.clock_start + timedelta(seconds=self._ticks),
                details=details or EventDetails(),
            )
        )
