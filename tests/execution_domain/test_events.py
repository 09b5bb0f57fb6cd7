from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from execution_domain.events import EventDetails, OrderEvent, OrderEventType
from testkit.domain import at, event


def test_order_event_round_trips_through_json() -> None:
    original = event("tkt_1", OrderEventType.PARTIAL_FILL, "ev-1", fill_id="f-1", last_qty="5", last_price="149.80")
    restored = OrderEvent.from_primitive(json.loads(json.dumps(original.to_primitive())))
    assert restored == original
    assert original.to_primitive()["details"] == {"fill_id": "f-1", "last_qty": "5", "last_price": "149.8"}


def test_the_rfc_5_4_webhook_body_parses() -> None:
    body = {
        "event_id": "evt-1",
        "execution_id": "exec_20260218_abc",
        "source": "OMS_X",
        "event_type": "PARTIAL_FILL",
        "external_order_id": "OMS12345",
        "ticket_id": "tkt_001",
        "occurred_at": "2026-02-18T10:00:00Z",
        "details": {"filled_qty": "5", "avg_price": "149.80"},
    }
    parsed = OrderEvent.from_primitive(body)
    assert parsed.details.is_cumulative and not parsed.details.is_per_fill
    assert parsed.details.avg_price == Decimal("149.80")


def test_a_report_with_a_fill_id_is_per_fill_even_when_it_carries_cumulative_fields() -> None:
    details = EventDetails(fill_id="f", last_qty=Decimal(1), last_price=Decimal(2), filled_qty=Decimal(5), avg_price=Decimal(2))
    assert details.is_per_fill and not details.is_cumulative


def test_report_key_ignores_delivery_metadata_but_not_content() -> None:
    original = event("tkt_1", OrderEventType.ORDER_ACCEPTED, "ev-1")
    resent = replace(original, source="OMS_X_RESEND", occurred_at=at(99))
    assert resent.report_key == original.report_key
    assert replace(original, external_order_id="OMS-2").report_key != original.report_key
