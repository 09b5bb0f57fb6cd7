"""What issues 14 (safety) and 15 (operational truth) must show, through the HTTP API, against a
real broker, a real processor and the real gateway, with the OMS scripted (`ScriptedOms` over
`mock_oms.provider.MockExecutionProvider`):

- 14: a cancelled or rejected execution's version executed again shares no ticket id with it,
  its orders reach the OMS and complete, and the first execution's late fill posted to the second
  one's webhook URL is refused and changes nothing; an inline artifact neither pre-empts nor
  displaces the version published upstream; `requested_by` is the token's principal.
- 15: a repeated cancel is 202 both times and sends one cancel per live order; a cancel of a
  finished execution is 409 and leaves no trace (no log entry, no anomaly, no metric); an FX
  rejected while an independent SELL works cancels the SELL (CANCEL_REMAINING) or lets it fill
  (LET_RUN), and `is_complete` turns true exactly when the last ticket is terminal; a create's
  trace reaches its tickets, its order events (through Kafka and the webhook) and its state
  changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from execution_domain.proposal import seal_artifact
from gateway.problems import PROBLEM_BASE
from mock_oms.provider import MockAccept, MockFill, MockHold, MockReject
from testkit.gateway import (
    INLINE_TOKEN,
    PRINCIPAL,
    Client,
    ExecutionOms,
    Stack,
    TracingOms,
    create_body,
    event_body,
    new_key,
    order_events_reader,
    sign,
    trace_id_of,
    unique_proposal,
)
from testkit.processor import TopicReader, drain_until_quiet, wait_until
from wire.views import ExecutionView

pytestmark = pytest.mark.integration

TERMINAL = {"FILLED", "CANCELLED", "REJECTED"}
CLAIMED = {"requested_by": "someone-else", "channel": "ADVISOR_APP"}


@pytest.fixture
def order_events(stack: Stack) -> Iterator[TopicReader]:
    reader = order_events_reader(stack.harness)
    yield reader
    reader.close()


def problem_type(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text
    slug: str = response.json()["type"].removeprefix(PROBLEM_BASE)
    return slug


def get(stack: Stack, execution_id: str) -> dict[str, Any]:
    response = stack.client.get(f"/rebalance/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_counters_agree(body)
    return body


def assert_counters_agree(body: dict[str, Any]) -> None:
    """`open_ticket_count` counts the tickets not terminal, and `is_complete` is true exactly when
    none is open, in every body the API answers."""
    open_tickets = sum(1 for ticket in body["tickets"] if ticket["status"] not in TERMINAL)
    assert body["open_ticket_count"] == open_tickets, body
    assert body["is_complete"] is (open_tickets == 0), body


def wait_body(stack: Stack, execution_id: str, predicate: Any, what: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = get(stack, execution_id)
        return body if predicate(body) else None
    found: dict[str, Any] = wait_until(check, 30, interval_s=0.05, what=what)
    return found


def whole_log(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    """Every lifecycle row, paged through GET .../events."""
    rows: list[dict[str, Any]] = []
    path: str | None = f"/rebalance/executions/{execution_id}/events?limit=7"
    while path is not None:
        response = stack.client.get(path)
        assert response.status_code == 200, response.text
        rows += response.json()["items"]
        path = response.json()["next"]
    return rows


def cancel(client: Client, execution_id: str) -> requests.Response:
    return client.request("POST", f"/rebalance/executions/{execution_id}/cancel",
                          json={"actor": CLAIMED, "reason": "client withdrew"})


def instructions(stack: Stack, execution_id: str, kind: str) -> list[dict[str, Any]]:
    return [i for i in stack.harness.instructions(execution_id) if i["instruction"] == kind]


def ticket_ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["ticket"]["ticket_id"] for record in records]


def create(stack: Stack, proposal: dict[str, Any], label: str, client: Client | None = None,
           **options: Any) -> dict[str, Any]:
    body = create_body(proposal, **options)
    body["actor"] = dict(CLAIMED)
    response = (client or stack.client).create(body, new_key(label))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_when_released(stack: Stack, proposal: dict[str, Any], label: str) -> dict[str, Any]:
    """A create of a version whose previous execution just ended: the version is released by a
    record between the processor's partitions, so a create right away may still find it held."""
    def attempt() -> dict[str, Any] | None:
        body = create_body(proposal)
        body["actor"] = dict(CLAIMED)
        response = stack.client.create(body, new_key(label))
        if response.status_code == 409 and problem_type(response) == "proposal-version-in-use":
            return None
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created
    found: dict[str, Any] = wait_until(attempt, 30, interval_s=0.2, what="the version to be released")
    return found


# -- issue 14 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["CANCELLED", "REJECTED"])
def test_reexecuted_version_shares_no_ticket_id_completes_and_refuses_the_first_executions_late_fill(
    stack: Stack, order_events: TopicReader, ending: str,
) -> None:
    proposal = unique_proposal("rfc_accept_all", f"again_{ending.lower()}")
    stack.publish(proposal)
    first = create(stack, proposal, "first")
    a_id = first["execution_id"]
    sell = first["tickets"][0]
    assert sell["side"] == "SELL"
    oms_a = ExecutionOms(stack.harness, a_id)
    if ending == "CANCELLED":
        oms_a.provider.script(sell["ticket_id"], MockAccept(), MockHold(), MockFill())
        oms_a.pump()
        wait_body(stack, a_id, lambda b: b["tickets"][0]["status"] == "ACCEPTED", "A's SELL working")
        assert cancel(stack.client, a_id).status_code == 202
        oms_a.run_until(lambda: stack.harness.latest_status(a_id) == "CANCELLED")
    else:
        oms_a.provider.script(sell["ticket_id"], MockReject("no inventory"))  # a funding SELL: critical
        oms_a.run_until(lambda: stack.harness.latest_status(a_id) == "REJECTED")
    ended = wait_body(stack, a_id, lambda b: b["status"] == ending and b["is_complete"], f"A {ending}")
    assert ended["open_ticket_count"] == 0

    second = create_when_released(stack, proposal, "second")
    b_id = second["execution_id"]
    assert b_id != a_id
    assert second["actor"]["requested_by"] == PRINCIPAL  # the token's principal, not the claimed one
    a_tickets = {t["ticket_id"] for t in first["tickets"]}
    assert a_tickets.isdisjoint(t["ticket_id"] for t in second["tickets"])

    oms_b = ExecutionOms(stack.harness, b_id)
    oms_b.run_until(lambda: stack.harness.latest_status(b_id) == "FILLED")
    done = wait_body(stack, b_id, lambda b: b["status"] == "FILLED", "B filled")
    assert done["is_complete"] and done["open_ticket_count"] == 0
    assert all(t["status"] == "FILLED" and t["external_order_id"].startswith("MOCK-") for t in done["tickets"])
    submitted_to_oms = {call.args[1][0].ticket_id for call in oms_b.provider.calls if call.method == "submit_tickets"}
    assert submitted_to_oms == {t["ticket_id"] for t in done["tickets"]}
    # On trade-tickets no ticket id of B is one of A's.
    b_submits = ticket_ids(instructions(stack, b_id, "SUBMIT"))
    assert sorted(b_submits) == sorted(t["ticket_id"] for t in done["tickets"])
    assert a_tickets.isdisjoint(b_submits)
    assert a_tickets.isdisjoint(ticket_ids(stack.harness.instructions(b_id)))

    # A's late fill, signed, posted to B's URL: refused, nothing published, B unchanged.
    late = event_body(sell["ticket_id"], "FILLED", event_id=f"late-{a_id}", external_order_id="MOCK-000001",
                      details={"filled_qty": sell["quantity"], "avg_price": "1"})
    refused = stack.client.post_event(b_id, late, sign(late))
    assert refused.status_code == 422, refused.text
    assert problem_type(refused) == "unknown-ticket"
    order_events.drain(0.5)
    assert not [r for r in order_events.records[stack.harness.topics.order_events] if r["event_id"] == f"late-{a_id}"]
    assert get(stack, b_id) == done
    log = whole_log(stack, b_id)
    assert len(log) == done["event_count"]
    # Each row names its cause's source: the reporting OMS for order events, none for commands.
    assert {row["source"] for row in log if row["event_id"]} == {"MOCK_OMS"}
    assert {row["source"] for row in log if row["kind"] == "EXECUTION_CREATED"} == {None}


def test_inline_artifact_neither_preempts_nor_displaces_the_upstream_version(stack: Stack) -> None:
    upstream = unique_proposal("rfc_accept_all", "inline_vs_upstream")
    inline = seal_artifact({**copy.deepcopy(upstream), "portfolio_id": "pf_inline_copy"})
    assert inline["proposal_version_hash"] != upstream["proposal_version_hash"]
    tool = Client(stack.gateway.url, INLINE_TOKEN)

    # An inline create before upstream published the version: executed from the inline artifact...
    early = create(stack, inline, "inline_early", tool, inline=True, policy={"dry_run": True})
    assert early["lineage"]["proposal_version_hash"] == inline["proposal_version_hash"]
    assert early["actor"]["requested_by"] == "proposal-tool"
    # ... and never stored as the version: upstream's, published later, is stored (publish waits for it).
    stack.publish(upstream)
    assert not [d for d in stack.harness.dead_letters() if upstream["proposal_id"].encode() in (d["original_key"] or b"")]
    # An inline create of other content now does not replace the stored version either.
    later = tool.create({**create_body(inline, inline=True, policy={"dry_run": True}), "actor": CLAIMED},
                        new_key("inline_late"))
    assert later.status_code in (201, 409, 422), later.text

    by_reference = create(stack, upstream, "by_reference")
    assert by_reference["lineage"]["proposal_version_hash"] == upstream["proposal_version_hash"]
    assert by_reference["portfolio_id"] == upstream["portfolio_id"] != inline["portfolio_id"]
    assert by_reference["actor"]["requested_by"] == PRINCIPAL


# -- issue 15 -----------------------------------------------------------------------------------------


def test_cancel_twice_is_202_both_times_and_one_cancel_per_live_order_reaches_the_oms(stack: Stack) -> None:
    proposal = unique_proposal("rfc_fx_reject", "cancel_twice")  # SELL and FX both released at once
    stack.publish(proposal)
    created = create(stack, proposal, "cancel_twice")
    execution_id = created["execution_id"]
    sell, fx, buy = created["tickets"]
    oms = ExecutionOms(stack.harness, execution_id)
    for ticket in (sell, fx):
        oms.provider.script(ticket["ticket_id"], MockAccept(), MockHold(), MockFill())
    oms.pump()
    wait_body(stack, execution_id, lambda b: [t["status"] for t in b["tickets"][:2]] == ["ACCEPTED", "ACCEPTED"],
              "both orders working")

    responses = [cancel(stack.client, execution_id) for _ in range(2)]  # the OMS has not answered in between
    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    assert [r.json()["cancel"] for r in responses] == ["ACCEPTED", "ACCEPTED"]
    wait_until(lambda: len(instructions(stack, execution_id, "CANCEL")) >= 2, 10, what="cancel instructions")
    drain_until_quiet(stack.harness.outputs.poll, 0.5)
    assert sorted(ticket_ids(instructions(stack, execution_id, "CANCEL"))) == sorted(
        [sell["ticket_id"], fx["ticket_id"]])
    pending = get(stack, execution_id)
    assert [t["status"] for t in pending["tickets"]] == ["PENDING_CANCEL", "PENDING_CANCEL", "CANCELLED"]
    assert (pending["open_ticket_count"], pending["is_complete"]) == (2, False)

    oms.run_until(lambda: stack.harness.latest_status(execution_id) == "CANCELLED")
    done = wait_body(stack, execution_id, lambda b: b["status"] == "CANCELLED" and b["is_complete"], "cancelled")
    assert done["open_ticket_count"] == 0 and buy["ticket_id"] not in ticket_ids(stack.harness.instructions(execution_id))


def test_cancel_of_a_filled_execution_is_409_and_leaves_no_log_entry_anomaly_or_metric(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "cancel_filled")
    stack.publish(proposal)
    execution_id = create(stack, proposal, "cancel_filled")["execution_id"]
    ExecutionOms(stack.harness, execution_id).run_until(lambda: stack.harness.latest_status(execution_id) == "FILLED")
    before = wait_body(stack, execution_id, lambda b: b["status"] == "FILLED", "filled")
    changes_before = len(stack.harness.state_changes(execution_id))
    anomalies_before = stack.processor_metric("processor_anomalies_total")

    refused = cancel(stack.client, execution_id)
    assert refused.status_code == 409, refused.text
    assert problem_type(refused) == "cancel-rejected" and refused.json()["detail"]

    drain_until_quiet(stack.harness.outputs.poll, 0.5)
    assert len(stack.harness.state_changes(execution_id)) == changes_before
    assert instructions(stack, execution_id, "CANCEL") == []
    after = get(stack, execution_id)
    assert after == before and after["anomaly_count"] == 0
    assert len(before["events"]) == before["event_count"]  # a short log: the body holds all of it
    assert whole_log(stack, execution_id) == before["events"]  # nothing appended
    assert stack.processor_metric("processor_anomalies_total") == anomalies_before


@pytest.mark.parametrize("on_critical_rejection", ["CANCEL_REMAINING", "LET_RUN"])
def test_fx_rejected_while_an_independent_sell_works(stack: Stack, on_critical_rejection: str) -> None:
    proposal = unique_proposal("rfc_fx_reject", f"fx_{on_critical_rejection.lower()}")
    stack.publish(proposal)
    created = create(stack, proposal, "fx_reject", policy={"on_critical_rejection": on_critical_rejection})
    execution_id = created["execution_id"]
    assert created["execution_policy"]["on_critical_rejection"] == on_critical_rejection
    sell, fx, buy = created["tickets"]
    assert (sell["side"], fx["ticket_type"], buy["side"]) == ("SELL", "FX_SPOT_ORDER", "BUY")
    oms = ExecutionOms(stack.harness, execution_id)
    oms.provider.script(sell["ticket_id"], MockAccept(), MockHold(), MockFill())
    oms.provider.script(fx["ticket_id"], MockReject("no liquidity"))
    oms.pump()  # the SELL accepted and held working, the FX rejected

    rejected = wait_body(stack, execution_id, lambda b: b["status"] == "REJECTED" and b["tickets"][1]["status"]
                         == "REJECTED", "the critical rejection")
    assert rejected["tickets"][2]["status"] == "CANCELLED"  # the BUY the FX was to fund
    assert rejected["is_complete"] is False and rejected["open_ticket_count"] == 1
    if on_critical_rejection == "CANCEL_REMAINING":
        wait_until(lambda: instructions(stack, execution_id, "CANCEL"), 10, what="the SELL's cancel")
        assert ticket_ids(instructions(stack, execution_id, "CANCEL")) == [sell["ticket_id"]]
        oms.run_until(lambda: get(stack, execution_id)["is_complete"])
        done = get(stack, execution_id)
        assert done["tickets"][0]["status"] == "CANCELLED" and done["tickets"][0]["filled_qty"] == "0"
    else:
        drain_until_quiet(stack.harness.outputs.poll, 0.5)
        assert instructions(stack, execution_id, "CANCEL") == []
        assert get(stack, execution_id)["tickets"][0]["status"] == "ACCEPTED"
        oms.provider.resume(sell["ticket_id"])  # the SELL's fill arrives after the rejection
        stack.harness.send_events(oms.provider.drain_events())
        done = wait_body(stack, execution_id, lambda b: b["is_complete"], "the SELL's late fill")
        assert done["tickets"][0]["status"] == "FILLED"
        assert done["tickets"][0]["filled_qty"] == done["tickets"][0]["order_quantity"] == sell["quantity"]
        assert any(row["ticket_id"] == sell["ticket_id"] and row["event_type"] == "FILLED"
                   for row in whole_log(stack, execution_id))
    assert done["status"] == "REJECTED" and done["open_ticket_count"] == 0
    listed = stack.client.get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"]}).json()
    assert [(i["execution_id"], i["open_ticket_count"], i["is_complete"]) for i in listed["items"]] == [
        (execution_id, 0, True)]

    # In the stream, is_complete turns true exactly with the change that made the last ticket terminal.
    view = ExecutionView(execution_id)
    changes = stack.harness.state_changes(execution_id)
    flips = []
    for change in changes:
        view.apply_change(change)
        all_terminal = all(t["status"] in TERMINAL for t in view.tickets.values())
        assert change["execution"]["is_complete"] is all_terminal, change["sequence"]
        flips.append(all_terminal)
    first = flips.index(True)
    assert all(flips[first:]) and not any(flips[:first])
    assert any(t["to_state"] in TERMINAL for t in changes[first]["ticket_transitions"])
    assert len(whole_log(stack, execution_id)) == done["event_count"]


def test_a_creates_traceparent_reaches_its_tickets_order_events_and_state_changes(
    stack: Stack, order_events: TopicReader,
) -> None:
    trace = "5e0c63257de34c92bf9efcd03927272e"
    proposal = unique_proposal("rfc_accept_all", "traced")
    stack.publish(proposal)
    response = stack.client.create(create_body(proposal), new_key("traced"),
                                   traceparent=f"00-{trace}-b7ad6b7169203331-01")
    assert response.status_code == 201, response.text
    execution_id = response.json()["execution_id"]
    sell = response.json()["tickets"][0]

    # An order event through the webhook, the call without a traceparent of its own.
    accepted = event_body(sell["ticket_id"], "ORDER_ACCEPTED", event_id=f"wh-acc-{execution_id}",
                          external_order_id="MOCK-000001")
    assert stack.client.post_event(execution_id, accepted, sign(accepted)).status_code == 202
    # The rest through Kafka, from an OMS adapter that carries each instruction's trace onto its events.
    TracingOms(stack.harness, execution_id).run_until(lambda: stack.harness.latest_status(execution_id) == "FILLED")
    drain_until_quiet(stack.harness.outputs.poll, 0.5)
    order_events.drain(0.5)

    topics = stack.harness.topics
    tickets = [m for m, r in zip(stack.harness.outputs.raw[topics.trade_tickets],
                                 stack.harness.outputs.records[topics.trade_tickets], strict=True)
               if r["execution_id"] == execution_id]
    changes = [m for m, r in zip(stack.harness.outputs.raw[topics.execution_state_changes],
                                 stack.harness.outputs.records[topics.execution_state_changes], strict=True)
               if r["execution_id"] == execution_id]
    events = [m for m, r in zip(order_events.raw[topics.order_events], order_events.records[topics.order_events],
                                strict=True) if r["execution_id"] == execution_id]
    assert len(tickets) == 3 and len(changes) > 3 and len(events) > 3
    assert [trace_id_of(m.headers()) for m in tickets] == [trace] * len(tickets), "trade-tickets"
    assert [trace_id_of(m.headers()) for m in events] == [trace] * len(events), "order-events (webhook and Kafka)"
    assert [trace_id_of(m.headers()) for m in changes] == [trace] * len(changes), "execution-state-changes"
