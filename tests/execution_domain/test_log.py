from __future__ import annotations

import json

import pytest

from execution_domain.events import OrderEventType
from execution_domain.execution import apply_order_event, mark_released, request_cancel
from execution_domain.log import CancelRequest, LogEntry, ReleaseMark, input_from_primitive
from execution_domain.request import Actor
from mock_oms.provider import MockExecutionProvider
from testkit.domain import T0, drive, event, new_execution

OPS = Actor("ops_001", "OPS_CONSOLE")


def test_every_log_entry_round_trips_through_json() -> None:
    execution, _ = drive(new_execution("sgd_multi_currency"), MockExecutionProvider(clock_start=T0))
    execution = request_cancel(execution, CancelRequest("c1", T0, OPS, None)).execution  # adds an anomaly entry
    for entry in execution.log:
        assert LogEntry.from_primitive(json.loads(json.dumps(entry.to_primitive()))) == entry


def test_inputs_are_tagged_by_type() -> None:
    mark = ReleaseMark("tkt_1", T0, "OMS-1")
    cancel = CancelRequest("c1", T0, OPS, "why")
    assert mark.to_primitive()["type"] == "TICKET_RELEASED" and input_from_primitive(mark.to_primitive()) == mark
    assert cancel.to_primitive()["type"] == "CANCEL_REQUESTED" and input_from_primitive(cancel.to_primitive()) == cancel
    with pytest.raises(ValueError):
        input_from_primitive({"type": "SOMETHING_ELSE"})


def test_entries_record_the_input_time_not_a_clock() -> None:
    execution = new_execution().execution
    assert execution.log[0].recorded_at == execution.definition.created_at


def test_an_entry_flattens_into_rows_for_adapters() -> None:
    outcome = new_execution("rfc_fx_reject")
    fx = outcome.execution.ticket_for_intent("oi_fx_usd_sgd").ticket_id
    buy = outcome.execution.ticket_for_intent("oi_buy_us_eq_etf").ticket_id
    execution = mark_released(outcome.execution, fx, T0, "OMS-1").execution
    rejected = apply_order_event(execution, event(fx, OrderEventType.ORDER_REJECTED, "rej-1", reason="no credit line"))
    rows = rejected.entry.rows()
    assert [(r.kind, r.ticket_id, r.from_state, r.to_state) for r in rows] == [
        ("ORDER_REJECTED", fx, "SUBMITTED", "REJECTED"),
        ("DEPENDENCY_FAILED", buy, "PENDING_SUBMIT", "CANCELLED"),
        ("EXECUTION_STATE_CHANGED", None, "SUBMITTED", "REJECTED"),
    ]
    assert rows[0].event_type is OrderEventType.ORDER_REJECTED and rows[0].event_id == "rej-1"
    assert "no credit line" in rows[0].reason
    created = outcome.execution.log[0].rows()
    assert created[0].kind == "EXECUTION_CREATED"
    assert [r.kind for r in created[1:]] == ["RELEASED_FOR_SUBMISSION"] * 2
