from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from execution_domain.events import OrderEvent, OrderEventType
from execution_domain.execution import (
    ArtifactNotExecutable,
    Execution,
    Outcome,
    apply_input,
    apply_order_event,
    create_execution,
    mark_released,
    replay,
    request_cancel,
    tickets_awaiting_submission,
)
from execution_domain.execution_state import ExecutionState
from execution_domain.log import CancelRequest, CreateExecution, ReleaseMark
from execution_domain.policy import CriticalSells, ExecutionPolicy, PartialFunding
from execution_domain.proposal import ArtifactInvalid, parse_artifact, seal_artifact
from execution_domain.request import request_hash
from execution_domain.ticket_state import AnomalyCode, TicketEventKind, TicketState
from execution_domain.tickets import generate_tickets
from mock_oms.provider import (
    MockAccept,
    MockCancel,
    MockCumulativeFill,
    MockExecutionProvider,
    MockFill,
    MockHold,
    MockReject,
)
from testkit.domain import (
    ORIGIN,
    POLICY,
    SAMPLE_NAMES,
    T0,
    at,
    drive,
    event,
    fill_event,
    load_sample,
    load_sample_raw,
    new_execution,
    released_ticket_ids,
)

S, E = TicketState, ExecutionState
D = Decimal


def ids(execution: Execution, *intent_ids: str) -> list[str]:
    return [execution.ticket_for_intent(i).ticket_id for i in intent_ids]


def submitted_ids(mock: MockExecutionProvider) -> list[str]:
    return [t.ticket_id for call in mock.calls if call.method == "submit_tickets" for t in call.args[1]]


def assert_log_replays(execution: Execution) -> None:
    assert replay(execution.log) == execution
    assert Execution.from_primitive(json.loads(json.dumps(execution.to_primitive()))) == execution


# --- creation ------------------------------------------------------------------------------------------


def test_create_puts_every_ticket_in_pending_submit_and_releases_those_without_dependencies() -> None:
    outcome = new_execution("sgd_multi_currency")
    execution = outcome.execution
    assert [r.state for r in execution.records.values()] == [S.PENDING_SUBMIT] * 5
    assert [t.intent_id for t in outcome.tickets_to_submit] == ["oi_sell_sggb_2031", "oi_sell_sgcorp_2029"]
    assert execution.state is E.CREATED
    (entry,) = execution.log
    assert isinstance(entry.input, CreateExecution) and entry.seq == 1 and entry.state_after is E.CREATED
    assert entry.released_for_submission == tuple(t.ticket_id for t in outcome.tickets_to_submit)
    assert tickets_awaiting_submission(execution) == outcome.tickets_to_submit


def test_create_keeps_lineage_and_audit_facts() -> None:
    artifact = load_sample("rfc_accept_all")
    execution = create_execution("exec_9", artifact, POLICY, T0, ORIGIN).execution
    definition = execution.definition
    assert definition.request_hash == request_hash(artifact.proposal_id, artifact.version_no, POLICY, ORIGIN.actor)
    assert definition.proposal.proposal_version_hash == artifact.proposal_version_hash
    assert definition.origin == ORIGIN and definition.created_at == T0
    assert definition.tickets == generate_tickets(artifact, POLICY)


def test_a_dry_run_generates_every_ticket_and_releases_none() -> None:
    outcome = new_execution("sgd_multi_currency", ExecutionPolicy(max_slippage_bps="25", dry_run=True))
    execution = outcome.execution
    assert len(execution.tickets) == 5 and outcome.tickets_to_submit == ()
    assert not any(r.released_for_submission for r in execution.records.values())
    sell = execution.tickets[0].ticket_id
    after = apply_order_event(execution, event(sell, OrderEventType.ORDER_ACCEPTED, "e1"))
    assert after.anomalies[0].code is AnomalyCode.NOT_RELEASED and after.execution.state is E.CREATED


def test_create_refuses_an_artifact_that_is_not_execution_ready() -> None:
    raw = load_sample_raw("rfc_accept_all")
    raw["gate_decision"]["decision"] = "PENDING_REVIEW"
    with pytest.raises(ArtifactNotExecutable):
        create_execution("exec_1", parse_artifact(seal_artifact(raw)), POLICY, T0, ORIGIN)


def test_create_refuses_an_artifact_whose_hash_does_not_match() -> None:
    artifact = load_sample("rfc_accept_all")
    tampered = artifact.model_copy(update={"portfolio_id": "someone_else"})
    with pytest.raises(ArtifactInvalid) as raised:
        create_execution("exec_1", tampered, POLICY, T0, ORIGIN)
    assert [p.code for p in raised.value.problems] == ["HASH_MISMATCH"]


# --- RFC 12.2 scenarios at the domain level ------------------------------------------------------


def test_rfc_scenario_accept_all_tickets_and_fill_them() -> None:
    outcome = new_execution("rfc_accept_all")
    mock = MockExecutionProvider(clock_start=T0)
    execution, outcomes = drive(outcome, mock)
    sell, fx, buy = ids(execution, "oi_sell_sg_eq_etf", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    assert submitted_ids(mock) == [sell, fx, buy]  # SELL first, then the FX it funds, then the BUY
    assert [r.state for r in execution.records.values()] == [S.FILLED] * 3
    assert execution.state is E.FILLED and execution.is_complete
    states = [o.state_after for o in outcomes]
    assert states[0] is E.CREATED and E.SUBMITTED in states and E.PARTIALLY_FILLED in states
    assert all(not o.anomalies for o in outcomes)
    assert_log_replays(execution)


def test_rfc_scenario_fx_rejected_cancels_the_dependent_buy_which_is_never_released() -> None:
    outcome = new_execution("rfc_fx_reject")
    sell, fx, buy = ids(outcome.execution, "oi_sell_sg_bond", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(fx, MockReject("no credit line for USD/SGD"))
    execution, outcomes = drive(outcome, mock)
    assert buy not in submitted_ids(mock) and buy not in released_ticket_ids(outcomes)
    assert execution.record(fx).state is S.REJECTED and execution.record(fx).reason == "no credit line for USD/SGD"
    bought = execution.record(buy)
    assert bought.state is S.CANCELLED and not bought.is_submitted and fx in bought.reason
    assert execution.record(sell).state is S.FILLED
    assert execution.state is E.REJECTED
    rejection = next(o for o in outcomes if any(c.kind is TicketEventKind.ORDER_REJECTED for c in o.changes))
    assert [(c.ticket_id, c.kind) for c in rejection.changes] == [
        (fx, TicketEventKind.ORDER_REJECTED),
        (buy, TicketEventKind.DEPENDENCY_FAILED),
    ]
    assert_log_replays(execution)


@pytest.mark.parametrize("cumulative", [False, True], ids=["per-fill", "cumulative"])
def test_rfc_scenario_partial_fill_then_fill(cumulative: bool) -> None:
    outcome = new_execution("rfc_partial_then_fill")
    sell, buy = ids(outcome.execution, "oi_sell_sg_bank", "oi_buy_sg_reit")
    mock = MockExecutionProvider(clock_start=T0)
    if cumulative:
        mock.script(sell, MockAccept(), MockCumulativeFill(D(200), D("38.10")), MockHold(), MockCumulativeFill(D(500), D("38.16")))
    else:
        mock.script(sell, MockAccept(), MockFill(D(200), D("38.10")), MockHold(), MockFill(D(300), D("38.20")))
    execution, _ = drive(outcome, mock)
    partial = execution.record(sell)
    assert (partial.state, partial.filled_qty) == (S.PARTIAL_FILL, D(200))
    assert execution.state is E.PARTIALLY_FILLED
    assert execution.record(buy).state is S.PENDING_SUBMIT and buy not in submitted_ids(mock)  # waits for the SELL

    mock.resume(sell)
    resumed = Outcome(execution, None)
    execution, outcomes = drive(resumed, mock)
    filled = execution.record(sell)
    assert (filled.state, filled.filled_qty, filled.avg_price) == (S.FILLED, D(500), D("38.16"))
    assert released_ticket_ids(outcomes) == [buy]
    assert execution.record(buy).state is S.FILLED and execution.state is E.FILLED
    assert_log_replays(execution)


def test_sgd_proposal_sells_bonds_converts_to_usd_and_buys_the_usd_etf() -> None:
    outcome = new_execution("sgd_multi_currency")
    mock = MockExecutionProvider(clock_start=T0)
    execution, _ = drive(outcome, mock)
    order = ["oi_sell_sggb_2031", "oi_sell_sgcorp_2029", "oi_buy_sg_reit", "oi_fx_usd_sgd", "oi_buy_us_eq_etf"]
    assert submitted_ids(mock) == ids(execution, *order)
    assert execution.state is E.FILLED


def test_a_partially_filled_fx_scales_the_usd_buy_down_and_submits_the_scaled_ticket() -> None:
    outcome = new_execution("sgd_multi_currency")
    fx, buy = ids(outcome.execution, "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(fx, MockAccept(), MockFill(D(6000), D("1.35")), MockCancel("IOC remainder"))
    execution, _ = drive(outcome, mock)
    submitted = next(t for c in mock.calls if c.method == "submit_tickets" for t in c.args[1] if t.ticket_id == buy)
    assert submitted.quantity == D(11)  # 20 * 6000/10248, whole units, rounded down
    assert execution.record(buy).order_qty == D(11) and execution.record(buy).state is S.FILLED
    assert execution.ticket(buy).quantity == D(20)  # the generated ticket itself never changes
    assert execution.state is E.FILLED  # partial fills allowed by default


# --- cancelling an execution ------------------------------------------------------------------------


def cancel(command_id: str = "cxl-1", seconds: int = 30) -> CancelRequest:
    return CancelRequest(command_id, at(seconds), ORIGIN.actor, "client changed mind")


def test_cancelling_before_anything_was_handed_to_the_oms_cancels_every_ticket_without_requests() -> None:
    execution = new_execution("sgd_multi_currency").execution
    outcome = request_cancel(execution, cancel())
    assert all(r.state is S.CANCELLED and not r.is_submitted for r in outcome.execution.records.values())
    assert outcome.cancel_requests == () and outcome.execution.state is E.CANCELLED
    assert tickets_awaiting_submission(outcome.execution) == ()


def test_cancelling_mid_way_requests_cancels_for_released_open_tickets_and_keeps_fills() -> None:
    outcome = new_execution("sgd_multi_currency")
    sell1, sell2, fx, reit, usd = ids(outcome.execution, "oi_sell_sggb_2031", "oi_sell_sgcorp_2029", "oi_fx_usd_sgd",
                                      "oi_buy_sg_reit", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(sell1, MockAccept(), MockFill(D(4000), D("1.01")), MockHold(), MockFill(None, D("1.01")))
    mock.script(sell2, MockAccept(), MockHold(), MockFill(None, D("0.99")))
    execution, _ = drive(outcome, mock)
    cancelled = request_cancel(execution, cancel())
    assert set(cancelled.cancel_requests) == {sell1, sell2}
    records = cancelled.execution.records
    assert records[sell1].state is S.PENDING_CANCEL and records[sell1].filled_qty == D(4000)
    assert all(records[t].state is S.CANCELLED and not records[t].is_submitted for t in (fx, reit, usd))
    for ticket_id in cancelled.cancel_requests:
        mock.cancel_ticket(ticket_id)
    final, _ = drive(Outcome(cancelled.execution, None), mock)
    assert final.record(sell1).state is S.CANCELLED and final.record(sell1).filled_qty == D(4000)
    assert final.state is E.CANCELLED
    assert_log_replays(final)


def test_a_cancel_that_loses_the_race_to_a_fill_ends_with_the_fill_recorded() -> None:
    outcome = new_execution("rfc_partial_then_fill")
    sell, buy = ids(outcome.execution, "oi_sell_sg_bank", "oi_buy_sg_reit")
    execution = mark_released(outcome.execution, sell, at(1), "OMS-1").execution
    execution = apply_order_event(execution, event(sell, OrderEventType.ORDER_ACCEPTED, "ack")).execution
    execution = request_cancel(execution, cancel()).execution
    for late in (
        fill_event(sell, "f-all", "500", "38.20", filled=True),
        event(sell, OrderEventType.CANCEL_REJECTED, "too-late", reason="too late to cancel"),
    ):
        execution = apply_order_event(execution, late).execution
    assert execution.record(sell).state is S.FILLED and execution.record(sell).filled_qty == D(500)
    assert execution.record(buy).state is S.CANCELLED  # cancelled before it was ever released
    assert execution.state is E.CANCELLED


def test_a_redelivered_cancel_command_changes_nothing() -> None:
    execution = request_cancel(new_execution().execution, cancel()).execution
    again = request_cancel(execution, cancel())
    assert again.duplicate and again.execution is execution


def test_cancelling_a_finished_execution_is_recorded_as_nothing_to_cancel() -> None:
    execution, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    outcome = request_cancel(execution, cancel())
    assert outcome.anomalies[0].code is AnomalyCode.NOTHING_TO_CANCEL
    assert outcome.execution.cancel_request is None and outcome.execution.state is E.FILLED


def test_marking_released_a_ticket_cancelled_before_release_asks_to_cancel_it_at_the_oms() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    cancelled = request_cancel(outcome.execution, cancel())
    marked = mark_released(cancelled.execution, sell, at(31), "OMS-9")
    assert marked.anomalies[0].code is AnomalyCode.RELEASED_AFTER_CANCEL
    assert marked.cancel_requests == (sell,)


# --- release marks, unknown tickets, duplicates -------------------------------------------------------


def test_marking_released_moves_to_submitted_once() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    marked = mark_released(outcome.execution, sell, at(1), "OMS-1")
    record = marked.execution.record(sell)
    assert (record.state, record.submitted_at, record.external_order_id) == (S.SUBMITTED, at(1), "OMS-1")
    assert marked.execution.state is E.SUBMITTED and isinstance(marked.entry.input, ReleaseMark)
    again = mark_released(marked.execution, sell, at(2), "OMS-1")
    assert again.duplicate and again.execution is marked.execution


def test_marking_released_a_ticket_whose_dependencies_are_not_filled_is_an_anomaly() -> None:
    execution = new_execution("rfc_accept_all").execution
    buy = execution.ticket_for_intent("oi_buy_us_eq_etf").ticket_id
    outcome = mark_released(execution, buy, at(1))
    assert outcome.anomalies[0].code is AnomalyCode.NOT_RELEASED
    assert outcome.execution.record(buy).state is S.PENDING_SUBMIT


def test_an_event_for_an_unknown_ticket_is_recorded_as_an_anomaly_once() -> None:
    execution = new_execution().execution
    stray = event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "e-stray")
    outcome = apply_order_event(execution, stray)
    assert outcome.anomalies[0].code is AnomalyCode.UNKNOWN_TICKET and outcome.anomalies[0].ticket_id == stray.ticket_id
    assert outcome.execution.records == execution.records and outcome.execution.state is execution.state
    assert apply_order_event(outcome.execution, stray).duplicate


def test_an_event_for_another_execution_is_recorded_as_an_anomaly() -> None:
    execution = new_execution().execution
    stray = event(execution.tickets[0].ticket_id, OrderEventType.ORDER_ACCEPTED, "e1", execution_id="exec_other")
    assert apply_order_event(execution, stray).anomalies[0].code is AnomalyCode.WRONG_EXECUTION


def test_an_event_no_rule_allows_is_logged_with_from_state_event_and_reason() -> None:
    execution, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    sell = execution.tickets[0].ticket_id
    rejected_late = event(sell, OrderEventType.ORDER_REJECTED, "late-reject", reason="?")
    outcome = apply_order_event(execution, rejected_late)
    (anomaly,) = outcome.anomalies
    assert (anomaly.code, anomaly.from_state, anomaly.kind, anomaly.event_id) == (
        AnomalyCode.INVALID_TRANSITION, S.FILLED, TicketEventKind.ORDER_REJECTED, "late-reject")
    assert outcome.entry.input == rejected_late and outcome.execution.record(sell).state is S.FILLED


def test_a_duplicate_event_returns_the_same_execution_and_logs_nothing() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    execution = mark_released(outcome.execution, sell, at(1)).execution
    report = fill_event(sell, "f1", "40", "20.5")
    once = apply_order_event(execution, report)
    twice = apply_order_event(once.execution, report)
    assert twice.duplicate and twice.execution is once.execution and twice.tickets_to_submit == ()


def test_the_log_is_append_only_and_immutable() -> None:
    execution, outcomes = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    logged = [o.entry for o in outcomes if o.entry is not None]
    assert list(execution.log) == logged
    assert [entry.seq for entry in execution.log] == list(range(1, len(execution.log) + 1))
    assert isinstance(execution.log, tuple)
    with pytest.raises(AttributeError):
        execution.log[0].seq = 5  # type: ignore[misc]


def test_apply_input_refuses_a_second_creation() -> None:
    execution = new_execution().execution
    with pytest.raises(ValueError):
        apply_input(execution, execution.log[0].input)


# --- properties: random OMS behaviour, duplicates, reorderings -------------------------------------


@st.composite
def mock_scripts(draw: st.DrawFn, quantity: Decimal) -> list[Any]:
    price = D(draw(st.integers(50, 5000))) / 100
    whole = int(quantity)
    part = D(draw(st.integers(1, max(1, whole - 1)))) if whole > 1 else quantity / 2
    return draw(st.sampled_from([
        [MockAccept(), MockFill(None, price)],
        [MockFill(None, price)],  # fill before acknowledgement
        [MockAccept(), MockFill(part, price), MockFill(None, price + 1)],
        [MockAccept(), MockFill(part, price), MockCancel("expired")],
        [MockAccept(), MockCancel("expired")],
        [MockReject("rejected by venue")],
        [MockAccept(), MockCumulativeFill(part, price), MockCumulativeFill(None, price)],
        [MockAccept(), MockFill(part, price), MockHold(), MockFill(None, price)],  # works until resumed or cancelled
        [MockAccept(), MockHold(), MockCancel("expired")],
    ]))


policies = st.builds(
    lambda partial, critical, allow: ExecutionPolicy(max_slippage_bps="25", partial_funding=partial,
                                                    critical_sells=critical, allow_partial_fills=allow),
    st.sampled_from(list(PartialFunding)), st.sampled_from(list(CriticalSells)), st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLE_NAMES), policies, st.data())
def test_random_executions_keep_their_invariants_under_duplicate_and_reordered_delivery(
    sample: str, policy: ExecutionPolicy, data: st.DataObject
) -> None:
    outcome = new_execution(sample, policy)
    execution = outcome.execution
    mock = MockExecutionProvider(clock_start=T0)
    for ticket in execution.tickets:
        mock.script(ticket.ticket_id, *data.draw(mock_scripts(ticket.order_quantity)))
    cancel_at = data.draw(st.one_of(st.none(), st.integers(0, 3)))

    inputs: list[Any] = []  # everything applied after creation, in order (duplicates included)
    delivered: list[OrderEvent] = []
    to_submit = list(outcome.tickets_to_submit)

    def apply(value: Any) -> Outcome:
        nonlocal execution
        before = execution
        result = apply_input(execution, value)
        inputs.append(value)
        execution = result.execution
        for ticket in result.tickets_to_submit:  # released only once every dependency funds it
            for dependency in ticket.dependencies:
                dep = execution.record(dependency)
                assert dep.state is S.FILLED or (dep.state is S.CANCELLED and dep.filled_qty > 0)
        if result.duplicate:
            assert result.execution is before
        to_submit.extend(result.tickets_to_submit)
        for ticket_id in result.cancel_requests:
            mock.cancel_ticket(ticket_id)
        return result

    for round_no in range(60):
        awaiting = {t.ticket_id for t in tickets_awaiting_submission(execution)}
        batch = [t for t in to_submit if t.ticket_id in awaiting]  # a processor re-checks before submitting
        to_submit.clear()
        if batch:
            result = mock.submit_tickets(execution.execution_id, batch)
            for submission in result.submissions:
                apply(ReleaseMark(submission.ticket_id, at(round_no), submission.external_order_id))
        events = mock.drain_events()
        if not events and not to_submit:
            if not mock.held():
                break
            mock.resume(mock.held()[0])  # the market moves on for an order left working
            continue
        shuffled = data.draw(st.permutations(events))
        resent = data.draw(st.lists(st.sampled_from(delivered + shuffled), max_size=4)) if delivered or shuffled else []
        deliveries: list[Any] = shuffled + resent
        if cancel_at == round_no:  # the cancel races whatever the OMS is reporting
            deliveries.insert(data.draw(st.integers(0, len(deliveries))), CancelRequest("cxl", at(100), ORIGIN.actor))
        for value in deliveries:
            apply(value)
            if isinstance(value, OrderEvent):
                delivered.append(value)
    else:
        raise AssertionError("did not settle")

    # The log replays to the same execution; the primitive form round-trips exactly.
    assert_log_replays(execution)
    # Duplicate delivery never matters: applying each input once gives the same execution.
    seen: set[int] = set()
    once = new_execution(sample, policy).execution
    for value in inputs:
        if isinstance(value, OrderEvent):
            if id(value) in seen:
                continue
            seen.add(id(value))
        once = apply_input(once, value).execution
    assert once == execution
    # Tickets whose funding failed were never handed to the OMS.
    submitted = set(submitted_ids(mock))
    for record in execution.records.values():
        if record.state is S.CANCELLED and not record.is_submitted:
            assert record.ticket_id not in submitted
        assert record.filled_qty <= record.order_qty  # the mock never overfills
    # Every order the mock accepted ends, and nothing waits for a release that cannot come.
    assert execution.is_complete
    label(f"final state {execution.state.value}")
    label(f"cancel requests sent: {any(c.method == 'cancel_ticket' for c in mock.calls)}")
    label(f"dependants scaled: {any(c.kind is TicketEventKind.DEPENDENCY_SCALED for e in execution.log for c in e.changes)}")
    label(f"anomalies: {sorted({(a.code.value, a.from_state, a.kind) for e in execution.log for a in e.anomalies})}")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SAMPLE_NAMES), st.data())
def test_execution_primitive_form_round_trips_at_every_step(sample: str, data: st.DataObject) -> None:
    outcome = new_execution(sample)
    mock = MockExecutionProvider(clock_start=T0)
    for ticket in outcome.execution.tickets:
        mock.script(ticket.ticket_id, *data.draw(mock_scripts(ticket.order_quantity)))
    _, outcomes = drive(outcome, mock)
    for step in outcomes:
        primitive = step.execution.to_primitive()
        restored = Execution.from_primitive(json.loads(json.dumps(primitive)))
        assert restored == step.execution and restored.to_primitive() == primitive


def test_replay_refuses_a_log_that_does_not_start_with_creation() -> None:
    execution, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    with pytest.raises(ValueError):
        replay(execution.log[1:])


def test_effective_ticket_is_the_generated_ticket_unless_scaled() -> None:
    execution = new_execution().execution
    for ticket in execution.tickets:
        assert execution.effective_ticket(ticket.ticket_id) is ticket


def test_state_before_and_after_are_reported() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    marked = mark_released(outcome.execution, sell, at(1))
    assert (marked.state_before, marked.state_after) == (E.CREATED, E.SUBMITTED)


def test_marking_released_an_unknown_ticket_is_an_anomaly() -> None:
    outcome = mark_released(new_execution().execution, "tkt_nope", at(1))
    assert outcome.anomalies[0].code is AnomalyCode.UNKNOWN_TICKET


def test_unrouted_events_survive_the_primitive_round_trip() -> None:
    execution = new_execution().execution
    execution = apply_order_event(execution, event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "e-stray")).execution
    restored = Execution.from_primitive(json.loads(json.dumps(execution.to_primitive())))
    assert restored == execution
    assert apply_order_event(restored, event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "e-stray")).duplicate
