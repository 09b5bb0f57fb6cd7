"""End to end over a real broker, a real processor and the real gateway: create, replay,
conflicts, unknown and blocked proposals, dry runs, inline artifacts, reads that reflect the
processor's state, list paging, cancel, and the 202 of a create nobody answered in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from execution_domain import execution_id_for_key
from gateway.app import BACKEND
from gateway.models import Execution, ExecutionPage
from gateway.problems import PROBLEM_BASE
from testkit.gateway import (
    INLINE_TOKEN,
    PRINCIPAL,
    Client,
    ExecutionOms,
    LiveGateway,
    Stack,
    create_body,
    gateway_config,
    new_key,
    unique_proposal,
)
from testkit.processor import ProcessorHarness, wait_until

pytestmark = pytest.mark.integration


def problem_type(response) -> str:  # noqa: ANN001
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text
    return response.json()["type"].removeprefix(PROBLEM_BASE)


def test_create_answers_201_with_the_rfc_body_and_the_execution_the_processor_made(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "create")
    stack.publish(proposal)
    key = new_key("create")

    response = stack.client.create(create_body(proposal), key, **{"X-Correlation-Id": "corr-e2e-create"})

    assert response.status_code == 201, response.text
    body = Execution.model_validate(response.json())
    assert body.execution_id == execution_id_for_key(key)
    assert (body.proposal_id, body.version_no, body.status.value) == (proposal["proposal_id"], 2, "SUBMITTED")
    assert body.lineage.request_hash.startswith("sha256:")
    assert body.lineage.proposal_version_hash == proposal["proposal_version_hash"]
    assert [t.ticket_type for t in body.tickets] == ["SECURITY_ORDER", "FX_SPOT_ORDER", "SECURITY_ORDER"]
    assert [t.status.value for t in body.tickets] == ["SUBMITTED", "PENDING_SUBMIT", "PENDING_SUBMIT"]
    assert response.headers["Location"] == f"/rebalance/executions/{body.execution_id}"
    assert response.headers["X-Correlation-Id"] == "corr-e2e-create"
    # The correlation id travelled with the command: the processor's state change carries it.
    changes = wait_until(lambda: stack.harness.state_changes(body.execution_id), 10, what="state changes")
    assert changes[0]["correlation_id"] == "corr-e2e-create"
    # Read-your-writes: the GET right after the 201 finds it.
    got = stack.client.get(f"/rebalance/executions/{body.execution_id}")
    assert got.status_code == 200 and got.json()["execution_id"] == body.execution_id


def test_get_reflects_the_processor_state_through_fills(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "fills")
    stack.publish(proposal)
    created = stack.client.create(create_body(proposal), new_key("fills")).json()
    execution_id = created["execution_id"]
    oms = ExecutionOms(stack.harness, execution_id)

    oms.run_until(lambda: stack.harness.latest_status(execution_id) == "FILLED")
    body = stack.wait_execution(execution_id, lambda b: b["status"] == "FILLED")

    Execution.model_validate(body)
    for ticket in body["tickets"]:
        assert ticket["status"] == "FILLED"
        assert ticket["filled_qty"] == ticket["order_quantity"]
        assert ticket["avg_price"] == "1"  # the mock OMS fills at 1
        assert ticket["external_order_id"].startswith("MOCK-")
        assert ticket["last_event_at"] is not None
    events = body["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["to_state"] == "CREATED"
    assert {"ORDER_ACCEPTED", "FILLED"} <= {e["event_type"] for e in events if e["event_type"]}
    assert events[-1]["to_state"] == "FILLED" or any(e["to_state"] == "FILLED" for e in events)
    # The list shows the new status too.
    page = stack.client.get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"]}).json()
    assert [(i["execution_id"], i["status"]) for i in page["items"]] == [(execution_id, "FILLED")]
    filled = stack.client.get("/rebalance/executions",
                              params={"proposal_id": proposal["proposal_id"], "status": "SUBMITTED"}).json()
    assert filled["items"] == []


def test_replay_with_the_same_key_and_body_returns_the_same_execution_with_200(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "replay")
    stack.publish(proposal)
    key = new_key("replay")
    first = stack.client.create(create_body(proposal), key)
    # The same request spelled differently (key order, decimal spelling, explicit defaults) is the same body.
    again = stack.client.create({
        "actor": {"channel": "ADVISOR_APP", "requested_by": "advisor_001"},
        "execution_policy": {"dry_run": False, "max_slippage_bps": "25.00", "time_in_force": "DAY"},
        "version_no": 2, "proposal_id": proposal["proposal_id"],
    }, key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.json()["tickets"][0]["ticket_id"] == first.json()["tickets"][0]["ticket_id"]
    assert again.json()["lineage"] == first.json()["lineage"]


def test_same_key_with_a_different_body_is_409_naming_the_execution(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "conflict")
    stack.publish(proposal)
    key = new_key("conflict")
    first = stack.client.create(create_body(proposal), key)
    conflict = stack.client.create(create_body(proposal, policy={"max_slippage_bps": "50"}), key)
    assert first.status_code == 201
    assert conflict.status_code == 409
    assert problem_type(conflict) == "idempotency-key-conflict"
    assert conflict.json()["existing_execution_id"] == first.json()["execution_id"]


def test_second_live_execution_of_a_proposal_version_is_409_version_in_use(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "inuse")
    stack.publish(proposal)
    first = stack.client.create(create_body(proposal), new_key("inuse-a"))
    second = stack.client.create(create_body(proposal), new_key("inuse-b"))
    assert first.status_code == 201
    assert second.status_code == 409
    assert problem_type(second) == "proposal-version-in-use"
    assert second.json()["existing_execution_id"] == first.json()["execution_id"]


def test_missing_idempotency_key_is_400(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "nokey")
    response = stack.client.create(create_body(proposal), None)
    assert response.status_code == 400
    assert problem_type(response) == "idempotency-key-missing"


def test_unknown_proposal_is_404(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "unpublished")  # never published
    response = stack.client.create(create_body(proposal), new_key("unknown"))
    assert response.status_code == 404
    assert problem_type(response) == "proposal-not-found"
    assert proposal["proposal_id"] in response.json()["detail"]


def test_proposal_not_ready_for_execution_is_422(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "blocked", gate_decision={
        "decision": "BLOCKED", "reasons": [{"code": "SUITABILITY_FAILED", "message": "risk too high"}],
        "decided_at": "2026-02-18T09:05:00Z",
    })
    stack.publish(proposal)
    response = stack.client.create(create_body(proposal), new_key("blocked"))
    assert response.status_code == 422
    assert problem_type(response) == "proposal-not-executable"
    assert "BLOCKED" in response.json()["detail"]


def test_dry_run_plans_every_ticket_and_releases_none(stack: Stack) -> None:
    proposal = unique_proposal("sgd_multi_currency", "dry")
    stack.publish(proposal)
    response = stack.client.create(create_body(proposal, policy={"dry_run": True}), new_key("dry"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "CREATED" and body["dry_run"] is True
    assert body["tickets"] and all(t["status"] == "PENDING_SUBMIT" and not t["released"] for t in body["tickets"])
    stack.harness.outputs.drain(0.3)
    assert stack.harness.instructions(body["execution_id"]) == []


def test_inline_artifact_executes_a_proposal_nobody_published(stack: Stack) -> None:
    proposal = unique_proposal("usd_cash_flow_eur", "inline")
    response = Client(stack.gateway.url, INLINE_TOKEN).create(create_body(proposal, inline=True), new_key("inline"))
    assert response.status_code == 201, response.text
    assert response.json()["lineage"]["proposal_version_hash"] == proposal["proposal_version_hash"]
    assert response.json()["actor"]["requested_by"] == "proposal-tool"


def test_inline_artifact_from_an_advisor_token_is_403_and_creates_nothing(stack: Stack) -> None:
    proposal = unique_proposal("usd_cash_flow_eur", "inline-denied")
    key = new_key("inline-denied")
    response = stack.client.create(create_body(proposal, policy={"dry_run": True}, inline=True), key)
    assert response.status_code == 403
    assert problem_type(response) == "insufficient-scope"
    assert stack.client.get(f"/rebalance/executions/{execution_id_for_key(key)}").status_code == 404


def test_requested_by_is_the_tokens_principal_whatever_the_client_claims(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "principal")
    stack.publish(proposal)
    body = {**create_body(proposal, policy={"dry_run": True}), "actor": {"requested_by": "someone_else",
                                                                         "channel": "ADVISOR_APP"}}
    created = stack.client.create(body, new_key("principal"))
    assert created.status_code == 201, created.text
    assert created.json()["actor"] == {"requested_by": PRINCIPAL, "channel": "ADVISOR_APP"}
    read = stack.client.get(f"/rebalance/executions/{created.json()['execution_id']}").json()
    assert read["actor"]["requested_by"] == PRINCIPAL


def test_unknown_execution_is_404(stack: Stack) -> None:
    response = stack.client.get("/rebalance/executions/exec_000000000000000000000000")
    assert response.status_code == 404
    assert problem_type(response) == "execution-not-found"


def test_list_paging_returns_each_execution_exactly_once_while_new_ones_arrive(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "paging")
    stack.publish(proposal)
    body = create_body(proposal, policy={"dry_run": True})  # dry runs do not hold the version

    def create() -> str:
        response = stack.client.create(body, new_key("page"))
        assert response.status_code == 201, response.text
        return response.json()["execution_id"]

    existing = [create() for _ in range(7)]
    seen: list[str] = []
    arrived: list[str] = []
    params = {"proposal_id": proposal["proposal_id"], "limit": "3"}
    while True:
        response = stack.client.get("/rebalance/executions", params=params)
        assert response.status_code == 200, response.text
        page = ExecutionPage.model_validate(response.json())
        assert len(page.items) <= 3
        seen += [item.execution_id for item in page.items]
        if page.next_cursor is None:
            break
        arrived.append(create())  # a new execution between every two pages
        params = {**params, "cursor": page.next_cursor}
    assert len(seen) == len(set(seen)), "an execution was listed twice"
    assert set(existing) <= set(seen), "an execution was skipped"
    assert set(seen) <= set(existing) | set(arrived)
    # Newest first: the order of creation, reversed.
    assert [e for e in seen if e in existing] == list(reversed(existing))
    # A fresh listing sees everything, the late arrivals first.
    everything = stack.client.get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"],
                                                                   "limit": "50"}).json()
    assert [i["execution_id"] for i in everything["items"]] == list(reversed(existing + arrived))


def test_cancel_is_202_then_409_when_nothing_is_left_to_cancel(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "cancel")
    stack.publish(proposal)
    execution_id = stack.client.create(create_body(proposal, policy={"dry_run": True}), new_key("cancel")).json()[
        "execution_id"]
    actor = {"requested_by": "advisor_001", "channel": "ADVISOR_APP"}

    first = stack.client.request("POST", f"/rebalance/executions/{execution_id}/cancel",
                                 json={"actor": actor, "reason": "client withdrew"})
    assert first.status_code == 202, first.text
    assert first.json()["cancel"] == "ACCEPTED"
    assert first.json()["execution"]["status"] == "CANCELLED"
    stack.wait_execution(execution_id, lambda b: b["status"] == "CANCELLED")

    second = stack.client.request("POST", f"/rebalance/executions/{execution_id}/cancel", json={"actor": actor})
    assert second.status_code == 409
    assert problem_type(second) == "cancel-rejected"

    unknown = stack.client.request("POST", "/rebalance/executions/exec_nope/cancel", json={"actor": actor})
    assert unknown.status_code == 404


def test_create_not_answered_in_time_is_202_and_a_retry_returns_the_execution(
    kafka_bootstrap: str, tmp_path: Path,
) -> None:
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)  # topics exist, no processor runs yet
    gateway = LiveGateway(gateway_config(harness, result_timeout_s=0.5))
    try:
        gateway.wait_ready()
        client = Client(gateway.url)
        proposal = unique_proposal("rfc_accept_all", "late")
        harness.publish_proposal(proposal)
        key = new_key("late")

        pending = client.create(create_body(proposal), key)
        assert pending.status_code == 202, pending.text
        execution_id = execution_id_for_key(key)
        assert pending.headers["Location"] == f"/rebalance/executions/{execution_id}"
        assert pending.json()["execution_id"] == execution_id
        assert client.get(pending.headers["Location"]).status_code == 404  # not created yet

        harness.start("late-1")
        polled = Stack(harness, gateway, client).wait_execution(execution_id, lambda b: b["status"] == "SUBMITTED")
        assert polled["execution_id"] == execution_id
        retry = client.create(create_body(proposal), key)
        assert retry.status_code == 200, retry.text
        assert retry.json()["execution_id"] == execution_id
    finally:
        gateway.stop()
        harness.close()


def test_a_new_instance_is_ready_only_once_its_read_model_holds_every_existing_execution(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "restart")
    stack.publish(proposal)
    body = create_body(proposal, policy={"dry_run": True})
    created = [stack.client.create(body, new_key("restart")).json()["execution_id"] for _ in range(3)]
    stack.harness.outputs.drain(0.2)
    expected = {c["execution_id"] for c in stack.harness.outputs.records[stack.harness.topics.execution_state_changes]}
    assert set(created) <= expected

    second = LiveGateway(gateway_config(stack.harness))
    try:
        second.wait_ready()
        # Ready means caught up with what was committed at start-up: no GET had to wait for it.
        model = second.app[BACKEND].read_model
        assert all(model.get(execution_id) is not None for execution_id in expected)
        listed = Client(second.url).get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"]})
        assert {i["execution_id"] for i in listed.json()["items"]} == set(created)
    finally:
        second.stop()
