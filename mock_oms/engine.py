"""The mock OMS's order book: instructions in, timed order events out.

Deterministic for a seed: each ticket draws from its own generator seeded with the ticket id,
so the events of an order do not depend on the order in which instructions arrive. Optional
faults a real OMS exhibits: a report delivered twice (same event id) and two reports of an
order delivered out of order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from execution_domain import EventDetails, OrderEvent, OrderEventType
from mock_oms.provider import MockAccept, MockCancel, MockCumulativeFill, MockFill, MockReject, MockStep
from mock_oms.scenarios import ScenarioBook, order_quantity


@dataclass(frozen=True, slots=True)
class Faults:
    duplicate_rate: float = 0.0  # chance that a report is delivered a second time, later
    reorder_rate: float = 0.0  # chance that a report swaps places with the next one of its order


@dataclass(frozen=True, slots=True)
class Delivery:
    delay_s: float  # from the instruction's arrival
    event: OrderEvent


@dataclass
class _Order:
    execution_id: str
    ticket_id: str
    external_order_id: str
    quantity: Decimal
    deliveries: list[Delivery] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)  # event ids already sent
    sequence: int = 0


class MockOmsEngine:
    def __init__(self, scenarios: ScenarioBook, *, seed: int = 7, source: str = "MOCK_OMS",
                 latency_ms: tuple[int, int] = (20, 120), faults: Faults = Faults()) -> None:
        self._scenarios = scenarios
        self._seed = seed
        self._source = source
        self._latency_ms = latency_ms
        self._faults = faults
        self._orders: dict[str, _Order] = {}

    def handle(self, instruction: dict[str, Any], now: datetime) -> list[Delivery]:
        """What to send, and when, for one TicketInstruction (SUBMIT or CANCEL)."""
        ticket = instruction["ticket"]
        if instruction["instruction"] == "SUBMIT":
            return self._submit(instruction, ticket, now)
        return self._cancel(ticket["ticket_id"], now)

    def mark_delivered(self, event: OrderEvent) -> None:
        order = self._orders.get(event.ticket_id)
        if order is not None:
            order.delivered.add(event.event_id)

    # -- internals ---------------------------------------------------------------------

    def _submit(self, instruction: dict[str, Any], ticket: dict[str, Any], now: datetime) -> list[Delivery]:
        ticket_id = ticket["ticket_id"]
        if ticket_id in self._orders:
            return []  # deterministic ticket ids let an OMS deduplicate resubmissions
        rng = random.Random(f"{self._seed}:{ticket_id}")
        order = _Order(instruction["execution_id"], ticket_id, "OMS-" + ticket_id.removeprefix("tkt_"),
                       order_quantity(ticket))
        self._orders[ticket_id] = order
        steps = self._scenarios.steps_for(instruction["proposal_id"], ticket, rng)
        delay = 0.0
        filled, notional = Decimal(0), Decimal(0)
        for step in steps:
            delay += rng.uniform(*self._latency_ms) / 1000
            report = self._report(order, step, filled, notional)
            if report is None:
                continue
            event_type, details, filled, notional = report
            order.deliveries.append(Delivery(delay, self._event(order, event_type, details, now, delay)))
        order.deliveries = self._with_faults(order.deliveries, rng)
        return list(order.deliveries)

    def _report(self, order: _Order, step: MockStep, filled: Decimal,
                notional: Decimal) -> tuple[OrderEventType, EventDetails, Decimal, Decimal] | None:
        if isinstance(step, MockAccept):
            return OrderEventType.ORDER_ACCEPTED, EventDetails(), filled, notional
        if isinstance(step, MockReject):
            return OrderEventType.ORDER_REJECTED, EventDetails(reason=step.reason), filled, notional
        if isinstance(step, MockCancel):
            return OrderEventType.CANCELLED, EventDetails(reason=step.reason), filled, notional
        if isinstance(step, MockFill):
            remaining = order.quantity - filled
            quantity = remaining if step.quantity is None else min(step.quantity, remaining)
            if quantity <= 0:
                return None
            filled += quantity
            kind = OrderEventType.FILLED if filled >= order.quantity else OrderEventType.PARTIAL_FILL
            order.sequence += 1
            details = EventDetails(fill_id=f"{order.external_order_id}-F{order.sequence}", last_qty=quantity,
                                   last_price=step.price)
            return kind, details, filled, notional + quantity * step.price
        if isinstance(step, MockCumulativeFill):
            cumulative = order.quantity if step.filled_qty is None else min(step.filled_qty, order.quantity)
            if cumulative <= filled:
                return None
            kind = OrderEventType.FILLED if cumulative >= order.quantity else OrderEventType.PARTIAL_FILL
            return kind, EventDetails(filled_qty=cumulative, avg_price=step.avg_price), cumulative, cumulative * step.avg_price
        return None

    def _event(self, order: _Order, event_type: OrderEventType, details: EventDetails, now: datetime,
               delay_s: float) -> OrderEvent:
        order.sequence += 1
        return OrderEvent(
            event_id=f"{order.external_order_id}-E{order.sequence}", execution_id=order.execution_id,
            ticket_id=order.ticket_id, source=self._source, event_type=event_type,
            external_order_id=order.external_order_id, occurred_at=now + timedelta(seconds=delay_s), details=details,
        )

    def _with_faults(self, deliveries: list[Delivery], rng: random.Random) -> list[Delivery]:
        out = list(deliveries)
        for index in range(len(out) - 1):
            if rng.random() < self._faults.reorder_rate:  # swap send times, keep report times
                a, b = out[index], out[index + 1]
                out[index], out[index + 1] = Delivery(a.delay_s, b.event), Delivery(b.delay_s, a.event)
        for delivery in list(out):
            if rng.random() < self._faults.duplicate_rate:
                out.append(Delivery(delivery.delay_s + rng.uniform(*self._latency_ms) / 1000, delivery.event))
        return sorted(out, key=lambda d: d.delay_s)

    def _cancel(self, ticket_id: str, now: datetime) -> list[Delivery]:
        order = self._orders.get(ticket_id)
        if order is None:
            return []
        sent = [d.event for d in order.deliveries if d.event.event_id in order.delivered]
        done = any(e.event_type in (OrderEventType.FILLED, OrderEventType.ORDER_REJECTED, OrderEventType.CANCELLED)
                   for e in sent)
        # What was not sent yet never happens: the cancel reached the order first.
        order.deliveries = [d for d in order.deliveries if d.event.event_id in order.delivered]
        if done:
            return [Delivery(0.01, self._event(order, OrderEventType.CANCEL_REJECTED,
                                               EventDetails(reason="too late to cancel"), now, 0.01))]
        pending = self._event(order, OrderEventType.PENDING_CANCEL, EventDetails(), now, 0.01)
        cancelled = self._event(order, OrderEventType.CANCELLED, EventDetails(reason="cancelled on request"), now, 0.03)
        order.deliveries += [Delivery(0.01, pending), Delivery(0.03, cancelled)]
        return [Delivery(0.01, pending), Delivery(0.03, cancelled)]

    def still_due(self, event: OrderEvent) -> bool:
        """False for a report a cancel overtook (it never happened at the OMS)."""
        order = self._orders.get(event.ticket_id)
        return order is not None and any(d.event.event_id == event.event_id for d in order.deliveries)
