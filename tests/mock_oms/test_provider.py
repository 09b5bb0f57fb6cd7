from __future__ import annotations

from decimal import Decimal

from execution_domain.events import OrderEventType
from execution_domain.ports import ExecutionProvider, OrderStatus, Status
from execution_domain.ticket_state import TicketState
from execution_domain.tickets import generate_tickets
from mock_oms.provider import MockAccept, MockExecutionProvider, MockFill, MockHold, MockRefuseSubmission
from testkit.domain import POLICY, T0, load_sample

D = Decimal


def tickets():
    return generate_tickets(load_sample("rfc_accept_all"), POLICY)


def test_the_mock_is_an_execution_provider() -> None:
    assert isinstance(MockExecutionProvider(clock_start=T0), ExecutionProvider)
    assert Status is OrderStatus


def test_submit_records_the_call_and_by_default_accepts_and_fills_everything() -> None:
    mock = MockExecutionProvider(clock_start=T0, default_fill_price=D("20.5"))
    sell = tickets()[0]
    result = mock.submit_tickets("exec_1", [sell])
    submission = result.for_ticket(sell.ticket_id)
    assert submission.accepted and submission.external_order_id == "MOCK-000001"
    assert [c.method for c in mock.calls] == ["submit_tickets"]
    events = mock.drain_events()
    assert [e.event_type for e in events] == [OrderEventType.ORDER_ACCEPTED, OrderEventType.FILLED]
    assert events[1].details.last_qty == D(100) and events[1].details.last_price == D("20.5")
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events) and events[0].occurred_at > T0
    assert mock.drain_events() == []


def test_a_resubmitted_ticket_is_deduplicated_by_its_ticket_id() -> None:
    mock = MockExecutionProvider(clock_start=T0)
    sell = tickets()[0]
    first = mock.submit_tickets("exec_1", [sell]).for_ticket(sell.ticket_id)
    mock.drain_events()
    again = mock.submit_tickets("exec_1", [sell]).for_ticket(sell.ticket_id)
    assert again.external_order_id == first.external_order_id and mock.drain_events() == []


def test_a_scripted_refusal_fails_the_submission_without_events() -> None:
    mock = MockExecutionProvider(clock_start=T0)
    sell = tickets()[0]
    mock.script(sell.ticket_id, MockRefuseSubmission("market closed"))
    submission = mock.submit_tickets("exec_1", [sell]).for_ticket(sell.ticket_id)
    assert not submission.accepted and submission.reason == "market closed" and mock.drain_events() == []


def test_cancel_of_a_working_order_is_confirmed_and_of_a_done_order_is_too_late() -> None:
    mock = MockExecutionProvider(clock_start=T0)
    sell, fx, _ = tickets()
    mock.script(sell.ticket_id, MockAccept(), MockFill(D(40), D(20)), MockHold(), MockFill())
    mock.submit_tickets("exec_1", [sell, fx])
    mock.drain_events()
    assert mock.held() == (sell.ticket_id,)
    assert mock.cancel_ticket(sell.ticket_id).accepted
    assert [e.event_type for e in mock.drain_events()] == [OrderEventType.PENDING_CANCEL, OrderEventType.CANCELLED]
    refused = mock.cancel_ticket(fx.ticket_id)
    assert not refused.accepted and refused.reason == "too late to cancel"
    assert [e.event_type for e in mock.drain_events()] == [OrderEventType.CANCEL_REJECTED]
    assert not mock.cancel_ticket("tkt_unknown").accepted


def test_fetch_status_reports_cumulative_quantity_and_average_price() -> None:
    mock = MockExecutionProvider(clock_start=T0)
    sell = tickets()[0]
    mock.script(sell.ticket_id, MockAccept(), MockFill(D(40), D(20)), MockFill(D(60), D(21)))
    external = mock.submit_tickets("exec_1", [sell]).for_ticket(sell.ticket_id).external_order_id
    status = mock.fetch_status(external)
    assert (status.state, status.filled_qty, status.avg_price) == (TicketState.FILLED, D(100), D("20.6"))
    assert mock.calls[-1].method == "fetch_status"
