from __future__ import annotations

import json

import pytest

from execution_domain.events import OrderEventType
from execution_domain.execution import apply_order_event, mark_released, request_cancel
from execution_domain.log import CancelRequest, CreateExecution, LogEntry, ReleaseMark, input_from_primitive
from execution_domain.request import Actor
from mock_oms.provider import MockAccept, MockExecutionProvider, MockFill, MockHold
from testkit.domain import T0, at, drive, event, new_execution

OPS = Actor("ops_001", "OPS_CONSOLE")


def test_every_log_entry_round_trips_through_json() -> None:
    # Every input type and an anomaly: creation, release marks, OMS events, a cancel (which no
    # longer logs a NOTHING_TO_CANCEL anomaly, so it comes mid-way), a report for an unknown ticket.
    outcome = new_execution("sgd_multi_currency")
    mock = MockExecutionProvider(clock_start=T0)
    for ticket in outcome.tickets_to_submit:
        mock.script(ticket.ticket_id, MockAccept(), MockFill(ticket.order_quantity / 2), MockHold(), MockFill())
    run, _ = drive(outcome, mock)
    cancelled = run.cancel(CancelRequest("c1", at(50), OPS, None))
    for ticket_id in cancelled.cancel_requests:
        mock.cancel_ticket(ticket_id)
    drive(run, mock)
    run.event(event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "stray", seconds=60))
    kinds = {type(entry.input).__name__ for entry in run.entries}
    assert kinds == {"CreateExecution", "ReleaseMark", "OrderEvent", "CancelRequest"}
    assert any(entry.anomalies for entry in run.entries)
    for entry in run.entries:
        assert LogEntry.from_primitive(json.loads(json.dumps(entry.to_primitive()))) == entry


def test_inputs_are_tagged_by_type() -> None:
    mark = ReleaseMark("tkt_1", T0, "OMS-1")
    cancel = CancelRequest("c1", T0, OPS, "why")
    assert mark.to_primitive()["type"] == "TICKET_RELEASED" and input_from_primitive(mark.to_primitive()) == mark
    assert cancel.to_primitive()["type"] == "CANCEL_REQUESTED" and input_from_primitive(cancel.to_primitive()) == cancel
    with pytest.raises(ValueError):
        input_from_primitive({"type": "SOMETHING_ELSE"})


def test_entries_record_the_input_time_not_a_clock() -> None:
    outcome = new_execution()
    assert outcome.entry is not None and outcome.entry.recorded_at == outcome.execution.definition.created_at
    sell = outcome.tickets_to_submit[0].ticket_id
    marked = mark_released(outcome.execution, sell, at(7), "OMS-1")
    assert marked.entry is not None and marked.entry.recorded_at == at(7)


def test_an_entry_flattens_into_rows_for_adapters() -> None:
    outcome = new_execution("rfc_fx_reject")
    fx = outcome.execution.ticket_for_intent("oi_fx_usd_sgd").ticket_id
    buy = outcome.execution.ticket_for_intent("oi_buy_us_eq_etf").ticket_id
    sell = outcome.execution.ticket_for_intent("oi_sell_sg_bond").ticket_id
    execution = mark_released(outcome.execution, fx, T0, "OMS-1").execution
    rejected = apply_order_event(execution, event(fx, OrderEventType.ORDER_REJECTED, "rej-1", reason="no credit line"))
    assert rejected.entry is not None
    rows = rejected.entry.rows()
    assert [(r.kind, r.ticket_id, r.from_state, r.to_state) for r in rows] == [
        ("ORDER_REJECTED", fx, "SUBMITTED", "REJECTED"),
        ("DEPENDENCY_FAILED", buy, "PENDING_SUBMIT", "CANCELLED"),
        # on_critical_rejection=CANCEL_REMAINING (the default): the SELL, released but never handed over, is cancelled
        ("CANCEL_REQUESTED", sell, "PENDING_SUBMIT", "CANCELLED"),
        ("EXECUTION_STATE_CHANGED", None, "SUBMITTED", "REJECTED"),
    ]
    assert rows[0].event_type is OrderEventType.ORDER_REJECTED and rows[0].event_id == "rej-1"
    assert "no credit line" in (rows[0].reason or "")
    assert outcome.entry is not None
    created = outcome.entry.rows()
    assert created[0].kind == "EXECUTION_CREATED"
    assert [r.kind for r in created[1:]] == ["RELEASED_FOR_SUBMISSION"] * 2


def test_an_entry_counts_its_rows_without_building_them_and_the_head_numbers_them_on() -> None:
    outcome = new_execution("rfc_fx_reject")
    fx = outcome.execution.ticket_for_intent("oi_fx_usd_sgd").ticket_id
    assert outcome.entry is not None and outcome.entry.row_count == len(outcome.entry.rows()) == 3
    assert outcome.first_row_seq == 1 and outcome.execution.row_count == 3
    marked = mark_released(outcome.execution, fx, T0, "OMS-1")
    assert marked.entry is not None and marked.entry.row_count == len(marked.entry.rows())
    assert marked.first_row_seq == 4 and marked.execution.row_count == 3 + marked.entry.row_count
    rejected = apply_order_event(marked.execution, event(fx, OrderEventType.ORDER_REJECTED, "rej-1", reason="no"))
    assert rejected.entry is not None and rejected.entry.row_count == len(rejected.entry.rows())
    assert rejected.first_row_seq == marked.execution.row_count + 1
    duplicate = mark_released(rejected.execution, fx, T0, "OMS-1")
    assert duplicate.entry is None and duplicate.first_row_seq == rejected.execution.row_count + 1


def test_a_cancel_entry_opens_with_its_own_row() -> None:
    outcome = new_execution("rfc_accept_all")
    assert outcome.entry is not None and isinstance(outcome.entry.input, CreateExecution)
    result = request_cancel(outcome.execution, CancelRequest("c1", at(3), OPS, "why"))
    assert result.entry is not None
    rows = result.entry.rows()
    assert rows[0].kind == "EXECUTION_CANCEL_REQUESTED" and rows[0].reason == "why"
    assert result.entry.row_count == len(rows)
