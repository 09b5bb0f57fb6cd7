"""The mock OMS's order book: scripted, seeded, deterministic; duplicates and reordering on demand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from execution_domain import OrderEventType
from mock_oms.engine import Faults, MockOmsEngine
from mock_oms.scenarios import ScenarioBook

NOW = datetime(2026, 2, 18, 10, tzinfo=UTC)


def instruction(ticket_id: str, kind: str = "SECURITY_ORDER", side: str = "SELL", action: str = "SUBMIT") -> dict:
    ticket = {"ticket_id": ticket_id, "ticket_type": kind, "intent_id": "oi", "order_type": "MARKET",
              "time_in_force": "DAY", "dependencies": []}
    if kind == "SECURITY_ORDER":
        ticket |= {"instrument_id": "SG_BOND", "side": side, "quantity": Decimal("100"), "currency": "SGD",
                   "constraints": {"max_slippage_bps": Decimal("25")}}
    else:
        ticket |= {"pair": "USD/SGD", "buy_currency": "USD", "buy_amount": Decimal("1500"),
                   "sell_currency": "SGD", "sell_amount_estimated": Decimal("2025")}
    return {"instruction": action, "execution_id": "exec_1", "proposal_id": "prop_1", "ticket": ticket}


def types(deliveries) -> list[OrderEventType]:
    return [d.event.event_type for d in deliveries]


def test_same_seed_gives_the_same_events_whatever_the_arrival_order() -> None:
    first, second = MockOmsEngine(ScenarioBook("seeded_mix"), seed=3), MockOmsEngine(ScenarioBook("seeded_mix"), seed=3)
    a1, b1 = first.handle(instruction("tkt_a"), NOW), first.handle(instruction("tkt_b"), NOW)
    b2, a2 = second.handle(instruction("tkt_b"), NOW), second.handle(instruction("tkt_a"), NOW)
    assert (a1, b1) == (a2, b2)


def test_accept_and_fill_fills_the_whole_order_after_accepting() -> None:
    deliveries = MockOmsEngine(ScenarioBook()).handle(instruction("tkt_a"), NOW)
    assert types(deliveries) == [OrderEventType.ORDER_ACCEPTED, OrderEventType.FILLED]
    assert deliveries[-1].event.details.last_qty == Decimal("100")
    assert deliveries[0].delay_s < deliveries[1].delay_s


def test_a_resubmitted_ticket_is_deduplicated_by_ticket_id() -> None:
    engine = MockOmsEngine(ScenarioBook())
    assert engine.handle(instruction("tkt_a"), NOW)
    assert engine.handle(instruction("tkt_a"), NOW) == []


def test_reject_fx_scenario_rejects_fx_tickets_only() -> None:
    engine = MockOmsEngine(ScenarioBook("accept_and_fill", {"prop_1": "reject_fx"}))
    assert types(engine.handle(instruction("tkt_fx", kind="FX_SPOT_ORDER"), NOW)) == [OrderEventType.ORDER_REJECTED]
    assert OrderEventType.FILLED in types(engine.handle(instruction("tkt_s"), NOW))


def test_partial_then_fill_reports_two_fills_that_add_up() -> None:
    deliveries = MockOmsEngine(ScenarioBook("partial_then_fill")).handle(instruction("tkt_a"), NOW)
    assert types(deliveries) == [OrderEventType.ORDER_ACCEPTED, OrderEventType.PARTIAL_FILL, OrderEventType.FILLED]
    assert sum(d.event.details.last_qty for d in deliveries[1:]) == Decimal("100")


def test_cancel_before_any_fill_is_sent_cancels_and_drops_the_unsent_reports() -> None:
    engine = MockOmsEngine(ScenarioBook())
    submitted = engine.handle(instruction("tkt_a"), NOW)
    engine.mark_delivered(submitted[0].event)  # only the acceptance went out
    answer = engine.handle(instruction("tkt_a", action="CANCEL"), NOW)
    assert types(answer) == [OrderEventType.PENDING_CANCEL, OrderEventType.CANCELLED]
    assert not engine.still_due(submitted[1].event)


def test_cancel_after_the_fill_was_sent_is_too_late() -> None:
    engine = MockOmsEngine(ScenarioBook())
    for delivery in engine.handle(instruction("tkt_a"), NOW):
        engine.mark_delivered(delivery.event)
    assert types(engine.handle(instruction("tkt_a", action="CANCEL"), NOW)) == [OrderEventType.CANCEL_REJECTED]


def test_fault_switches_duplicate_and_reorder_reports() -> None:
    engine = MockOmsEngine(ScenarioBook("partial_then_fill"), faults=Faults(duplicate_rate=1.0, reorder_rate=1.0))
    deliveries = engine.handle(instruction("tkt_a"), NOW)
    ids = [d.event.event_id for d in deliveries]
    assert len(ids) == 2 * len(set(ids))  # every report twice
    first_seen = list(dict.fromkeys(ids))
    assert first_seen != sorted(first_seen, key=lambda i: int(i.rsplit("E", 1)[1]))  # not in report order
