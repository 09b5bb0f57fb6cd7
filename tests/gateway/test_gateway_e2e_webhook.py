"""The OMS webhook end to end: a signed event moves the execution through the real processor;
unsigned, wrongly signed, stale and body-swapped requests are refused and publish nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.webhook import derived_event_id
from testkit.gateway import (
    OLD_WEBHOOK_SECRET,
    Stack,
    create_body,
    event_body,
    new_key,
    sign,
    unique_proposal,
)
from testkit.processor import TopicReader, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def order_events(stack: Stack) -> Iterator[TopicReader]:
    reader = TopicReader(stack.harness.bootstrap, {stack.harness.topics.order_events: "OrderEvent"})
    yield reader
    reader.close()


def published(reader: TopicReader, stack: Stack, execution_id: str) -> list[dict]:
    reader.drain(0.5)
    return [r for r in reader.records[stack.harness.topics.order_events] if r["execution_id"] == execution_id]


def test_signed_events_move_the_execution_and_refused_ones_publish_nothing(
    stack: Stack, order_events: TopicReader,
) -> None:
    proposal = unique_proposal("rfc_accept_all", "webhook")
    stack.publish(proposal)
    created = stack.client.create(create_body(proposal), new_key("webhook")).json()
    execution_id = created["execution_id"]
    sell = created["tickets"][0]
    assert (sell["side"], sell["status"]) == ("SELL", "SUBMITTED")
    ticket_id = sell["ticket_id"]

    accepted = event_body(ticket_id, "ORDER_ACCEPTED", event_id="rpt-1", external_order_id="OMS-777")
    # Refused: unsigned, wrong secret, stale, from the future, and a valid signature of another body.
    other = event_body(ticket_id, "ORDER_REJECTED", event_id="rpt-1", external_order_id="OMS-777")
    refused = {
        "unsigned": stack.client.post_event(execution_id, accepted, None),
        "wrong secret": stack.client.post_event(execution_id, accepted, sign(accepted, "not-the-secret")),
        "stale": stack.client.post_event(execution_id, accepted, sign(accepted, at=int(time.time()) - 301)),
        "future": stack.client.post_event(execution_id, accepted, sign(accepted, at=int(time.time()) + 301)),
        "other body": stack.client.post_event(execution_id, accepted, sign(other)),
    }
    for case, response in refused.items():
        assert response.status_code == 401, (case, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
    assert published(order_events, stack, execution_id) == []
    assert stack.client.get(f"/rebalance/executions/{execution_id}").json()["tickets"][0]["status"] == "SUBMITTED"

    # A valid signed event: published, folded by the processor, visible through GET.
    response = stack.client.post_event(execution_id, accepted, sign(accepted))
    assert response.status_code == 202, response.text
    assert response.json() == {"event_id": "rpt-1", "execution_id": execution_id, "ticket_id": ticket_id}
    body = stack.wait_execution(execution_id, lambda b: b["tickets"][0]["status"] == "ACCEPTED")
    assert body["tickets"][0]["external_order_id"] == "OMS-777"
    assert any(e["event_id"] == "rpt-1" and e["event_type"] == "ORDER_ACCEPTED" for e in body["events"])

    # Signed with the previous secret (rotation), no event_id: cumulative partial fill.
    fill = event_body(ticket_id, "PARTIAL_FILL", external_order_id="OMS-777",
                      details={"filled_qty": "40", "avg_price": "20.5"})
    response = stack.client.post_event(execution_id, fill, sign(fill, OLD_WEBHOOK_SECRET))
    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == derived_event_id(fill)
    body = stack.wait_execution(execution_id, lambda b: b["tickets"][0]["filled_qty"] == "40")
    assert (body["status"], body["tickets"][0]["status"], body["tickets"][0]["avg_price"]) == (
        "PARTIALLY_FILLED", "PARTIAL_FILL", "20.5")
    fill_rows = [e for e in body["events"] if e["event_id"] == derived_event_id(fill)]

    # The same webhook delivered again (re-signed later): published, deduplicated by event id.
    again = stack.client.post_event(execution_id, fill, sign(fill, at=int(time.time()) + 1))
    assert again.status_code == 202 and again.json()["event_id"] == derived_event_id(fill)

    # Invalid or misdirected events are refused before anything is published.
    assert stack.client.post_event(execution_id, b"{oops", sign(b"{oops")).status_code == 400
    bad_type = event_body(ticket_id, "EXPLODED")
    assert stack.client.post_event(execution_id, bad_type, sign(bad_type)).status_code == 422
    stranger = event_body("tkt_000000000000", "ORDER_ACCEPTED")
    assert stack.client.post_event(execution_id, stranger, sign(stranger)).status_code == 422
    assert stack.client.post_event("exec_000000000000000000000000", accepted, sign(accepted)).status_code == 404

    # A later event, applied after the redelivery: by then the redelivery was folded, as a no-op.
    filled = event_body(ticket_id, "FILLED", event_id="rpt-3", external_order_id="OMS-777",
                        details={"filled_qty": "100", "avg_price": "20.5"})
    assert stack.client.post_event(execution_id, filled, sign(filled)).status_code == 202
    final = stack.wait_execution(execution_id, lambda b: b["tickets"][0]["status"] == "FILLED")
    assert final["tickets"][0]["filled_qty"] == "100"
    assert [e for e in final["events"] if e["event_id"] == derived_event_id(fill)] == fill_rows

    records = published(order_events, stack, execution_id)
    assert [r["event_id"] for r in records] == ["rpt-1", derived_event_id(fill), derived_event_id(fill), "rpt-3"]
    assert [r["event_type"] for r in records] == ["ORDER_ACCEPTED", "PARTIAL_FILL", "PARTIAL_FILL", "FILLED"]
    assert all(r["source"] == "OMS_X" and r["ticket_id"] == ticket_id for r in records)


def test_create_trace_and_correlation_id_reach_the_command_and_the_webhook_delivered_fill(
    stack: Stack, order_events: TopicReader,
) -> None:
    harness = stack.harness
    trace_id = "5a1c0ffee0ddba11cafe5eed0000" + time.strftime("%H%M")
    proposal = unique_proposal("rfc_accept_all", "traced")
    stack.publish(proposal)
    created = stack.client.create(create_body(proposal), new_key("traced"), **{
        "X-Correlation-Id": "corr-traced-1", "traceparent": f"00-{trace_id}-1111111111111111-01"})
    assert created.status_code == 201, created.text
    execution_id, sell = created.json()["execution_id"], created.json()["tickets"][0]["ticket_id"]

    commands = TopicReader(harness.bootstrap, {harness.topics.execution_commands: "ExecutionCommand",
                                              harness.topics.execution_state_changes: "ExecutionStateChange"})
    try:
        def both() -> tuple[Any, Any] | None:  # a new reader's first fetches can take a while on a loaded runner
            commands.poll(0.2)
            found = [m for m in commands.raw[harness.topics.execution_commands] if m.key() == execution_id.encode()]
            changes = zip(commands.raw[harness.topics.execution_state_changes],
                          commands.records[harness.topics.execution_state_changes], strict=True)
            first = [m for m, r in changes if r["execution_id"] == execution_id and r["sequence"] == 1]
            return (found, first) if found and first else None

        found, first = wait_until(both, 30, what="the create command and its first state change")
        [command], [first_change] = found, first
    finally:
        commands.close()
    command_headers = dict(command.headers())
    assert command_headers["correlation_id"] == b"corr-traced-1"
    assert command_headers["traceparent"].split(b"-")[1].decode() == trace_id

    # The OMS calls back without any id of its own.
    fill = event_body(sell, "ORDER_ACCEPTED", event_id="rpt-traced-1", external_order_id="OMS-T1")
    answer = stack.client.post_event(execution_id, fill, sign(fill))
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Correlation-Id"] == "corr-traced-1"
    order_events.drain(0.5)
    [event] = [m for m in order_events.raw[harness.topics.order_events] if m.key() == execution_id.encode()]
    event_headers = dict(event.headers())
    assert event_headers["correlation_id"] == b"corr-traced-1"  # the create's correlation id reaches its fill
    create_trace = dict(first_change.headers() or ()).get("traceparent")
    if create_trace is not None:  # once the processor puts the create's trace on its state changes
        assert event_headers["traceparent"].split(b"-")[1] == create_trace.split(b"-")[1]
    assert len(event_headers["traceparent"].split(b"-")[1]) == 32
