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
    POLICY_ACTOR,
    ArtifactNotExecutable,
    CancelVerdict,
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
from execution_domain.execution_state import ExecutionState, TicketTally, execution_facts
from execution_domain.history import InMemoryHistory
from execution_domain.log import CancelRequest, CreateExecution, ReleaseMark
from execution_domain.policy import CriticalSells, ExecutionPolicy, OnCriticalRejection, PartialFunding
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
    Folded,
    assert_head_matches_log,
    at,
    drive,
    event,
    fill_event,
    load_sample,
    load_sample_raw,
    new_execution,
    policy_of,
    released_ticket_ids,
)

S, E = TicketState, ExecutionState
D = Decimal


def ids(execution: Execution, *intent_ids: str) -> list[str]:
    return [execution.ticket_for_intent(i).ticket_id for i in intent_ids]


def submitted_ids(mock: MockExecutionProvider) -> list[str]:
    return [t.ticket_id for call in mock.calls if call.method == "submit_tickets" for t in call.args[1]]


def folded(sample: str = "sgd_multi_currency", policy: ExecutionPolicy = POLICY) -> Folded:
    return Folded.start(new_execution(sample, policy))


# --- creation ------------------------------------------------------------------------------------------


def test_create_puts_every_ticket_in_pending_submit_and_releases_those_without_dependencies() -> None:
    outcome = new_execution("sgd_multi_currency")
    execution = outcome.execution
    assert [r.state for r in execution.records.values()] == [S.PENDING_SUBMIT] * 5
    assert [t.intent_id for t in outcome.tickets_to_submit] == ["oi_sell_sggb_2031", "oi_sell_sgcorp_2029"]
    assert execution.state is E.CREATED
    entry = outcome.entry
    assert entry is not None and isinstance(entry.input, CreateExecution)
    assert entry.seq == 1 and entry.state_after is E.CREATED
    assert (execution.seq, execution.row_count, execution.anomaly_count) == (1, len(entry.rows()), 0)
    assert entry.released_for_submission == tuple(t.ticket_id for t in outcome.tickets_to_submit)
    assert outcome.changed_tickets == tuple(t.ticket_id for t in execution.tickets)
    assert tickets_awaiting_submission(execution) == outcome.tickets_to_submit
    assert execution.open_ticket_count == 5 and not execution.is_complete


def test_create_keeps_lineage_and_audit_facts() -> None:
    artifact = load_sample("rfc_accept_all")
    execution = create_execution("exec_9", artifact, POLICY, T0, ORIGIN).execution
    definition = execution.definition
    assert definition.request_hash == request_hash(artifact.proposal_id, artifact.version_no, POLICY, ORIGIN.actor)
    assert definition.proposal.proposal_version_hash == artifact.proposal_version_hash
    assert definition.origin == ORIGIN and definition.created_at == T0
    assert definition.tickets == generate_tickets(artifact, POLICY)


def test_a_dry_run_generates_every_ticket_and_releases_none() -> None:
    outcome = new_execution("sgd_multi_currency", policy_of(max_slippage_bps="25", dry_run=True))
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
    run, outcomes = drive(outcome, mock)
    execution = run.execution
    sell, fx, buy = ids(execution, "oi_sell_sg_eq_etf", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    assert submitted_ids(mock) == [sell, fx, buy]  # SELL first, then the FX it funds, then the BUY
    assert [r.state for r in execution.records.values()] == [S.FILLED] * 3
    assert execution.state is E.FILLED and execution.is_complete
    states = [o.state_after for o in outcomes]
    assert states[0] is E.CREATED and E.SUBMITTED in states and E.PARTIALLY_FILLED in states
    assert all(not o.anomalies for o in outcomes)
    assert_head_matches_log(run)


def test_rfc_scenario_fx_rejected_cancels_the_dependent_buy_which_is_never_released() -> None:
    outcome = new_execution("rfc_fx_reject")
    sell, fx, buy = ids(outcome.execution, "oi_sell_sg_bond", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(fx, MockReject("no credit line for USD/SGD"))
    run, outcomes = drive(outcome, mock)
    execution = run.execution
    assert buy not in submitted_ids(mock) and buy not in released_ticket_ids(outcomes)
    assert execution.record(fx).state is S.REJECTED and execution.record(fx).reason == "no credit line for USD/SGD"
    bought = execution.record(buy)
    assert bought.state is S.CANCELLED and not bought.is_submitted and fx in (bought.reason or "")
    assert execution.record(sell).state is S.FILLED
    assert execution.state is E.REJECTED
    rejection = next(o for o in outcomes if any(c.kind is TicketEventKind.ORDER_REJECTED for c in o.changes))
    assert [(c.ticket_id, c.kind) for c in rejection.changes] == [
        (fx, TicketEventKind.ORDER_REJECTED),
        (buy, TicketEventKind.DEPENDENCY_FAILED),
    ]
    assert rejection.cancel_requests == ()  # the SELL had filled: nothing left to cancel
    assert execution.is_complete and execution.open_ticket_count == 0
    assert_head_matches_log(run)


@pytest.mark.parametrize("cumulative", [False, True], ids=["per-fill", "cumulative"])
def test_rfc_scenario_partial_fill_then_fill(cumulative: bool) -> None:
    outcome = new_execution("rfc_partial_then_fill")
    sell, buy = ids(outcome.execution, "oi_sell_sg_bank", "oi_buy_sg_reit")
    mock = MockExecutionProvider(clock_start=T0)
    if cumulative:
        mock.script(sell, MockAccept(), MockCumulativeFill(D(200), D("38.10")), MockHold(),
                    MockCumulativeFill(D(500), D("38.16")))
    else:
        mock.script(sell, MockAccept(), MockFill(D(200), D("38.10")), MockHold(), MockFill(D(300), D("38.20")))
    run, _ = drive(outcome, mock)
    execution = run.execution
    partial = execution.record(sell)
    assert (partial.state, partial.filled_qty) == (S.PARTIAL_FILL, D(200))
    assert execution.state is E.PARTIALLY_FILLED
    assert execution.record(buy).state is S.PENDING_SUBMIT and buy not in submitted_ids(mock)  # waits for the SELL

    mock.resume(sell)
    _, outcomes = drive(run, mock)
    execution = run.execution
    filled = execution.record(sell)
    assert (filled.state, filled.filled_qty, filled.avg_price) == (S.FILLED, D(500), D("38.16"))
    assert released_ticket_ids(outcomes) == [buy]
    assert execution.record(buy).state is S.FILLED and execution.state is E.FILLED
    assert_head_matches_log(run)


def test_sgd_proposal_sells_bonds_converts_to_usd_and_buys_the_usd_etf() -> None:
    outcome = new_execution("sgd_multi_currency")
    mock = MockExecutionProvider(clock_start=T0)
    execution = drive(outcome, mock)[0].execution
    order = ["oi_sell_sggb_2031", "oi_sell_sgcorp_2029", "oi_buy_sg_reit", "oi_fx_usd_sgd", "oi_buy_us_eq_etf"]
    assert submitted_ids(mock) == ids(execution, *order)
    assert execution.state is E.FILLED


def test_a_partially_filled_fx_scales_the_usd_buy_down_and_submits_the_scaled_ticket() -> None:
    outcome = new_execution("sgd_multi_currency")
    fx, buy = ids(outcome.execution, "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(fx, MockAccept(), MockFill(D(6000), D("1.35")), MockCancel("IOC remainder"))
    execution = drive(outcome, mock)[0].execution
    submitted = next(t for c in mock.calls if c.method == "submit_tickets" for t in c.args[1] if t.ticket_id == buy)
    assert submitted.quantity == D(11)  # 20 * 6000/10248, whole units, rounded down
    assert execution.record(buy).order_qty == D(11) and execution.record(buy).state is S.FILLED
    assert execution.ticket(buy).order_quantity == D(20)  # the generated ticket itself never changes
    assert execution.state is E.FILLED  # partial fills allowed by default


# --- cancelling an execution ------------------------------------------------------------------------


def cancel(command_id: str = "cxl-1", seconds: int = 30) -> CancelRequest:
    return CancelRequest(command_id, at(seconds), ORIGIN.actor, "client changed mind")


def test_cancelling_before_anything_was_handed_to_the_oms_cancels_every_ticket_without_requests() -> None:
    run = folded()
    outcome = run.cancel(cancel())
    assert outcome.cancel is CancelVerdict.ACCEPTED and outcome.entry is not None
    assert all(r.state is S.CANCELLED and not r.is_submitted for r in outcome.execution.records.values())
    assert outcome.cancel_requests == () and outcome.execution.state is E.CANCELLED
    assert tickets_awaiting_submission(outcome.execution) == ()
    assert outcome.execution.cancel_request == cancel() and outcome.execution.is_complete


def test_cancelling_mid_way_requests_cancels_for_released_open_tickets_and_keeps_fills() -> None:
    outcome = new_execution("sgd_multi_currency")
    sell1, sell2, fx, reit, usd = ids(outcome.execution, "oi_sell_sggb_2031", "oi_sell_sgcorp_2029", "oi_fx_usd_sgd",
                                      "oi_buy_sg_reit", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(sell1, MockAccept(), MockFill(D(4000), D("1.01")), MockHold(), MockFill(None, D("1.01")))
    mock.script(sell2, MockAccept(), MockHold(), MockFill(None, D("0.99")))
    run, _ = drive(outcome, mock)
    cancelled = run.cancel(cancel())
    assert cancelled.cancel is CancelVerdict.ACCEPTED
    assert set(cancelled.cancel_requests) == {sell1, sell2}
    records = cancelled.execution.records
    assert records[sell1].state is S.PENDING_CANCEL and records[sell1].filled_qty == D(4000)
    assert all(records[t].state is S.CANCELLED and not records[t].is_submitted for t in (fx, reit, usd))
    assert cancelled.execution.open_ticket_count == 2
    for ticket_id in cancelled.cancel_requests:
        mock.cancel_ticket(ticket_id)
    final = drive(run, mock)[0].execution
    assert final.record(sell1).state is S.CANCELLED and final.record(sell1).filled_qty == D(4000)
    assert final.state is E.CANCELLED and final.open_ticket_count == 0
    assert_head_matches_log(run)


def test_a_cancel_that_loses_the_race_to_a_fill_ends_with_the_fill_recorded() -> None:
    run = folded("rfc_partial_then_fill")
    sell, buy = ids(run.execution, "oi_sell_sg_bank", "oi_buy_sg_reit")
    run.release(sell, at(1), "OMS-1")
    run.event(event(sell, OrderEventType.ORDER_ACCEPTED, "ack"))
    run.cancel(cancel())
    run.event(fill_event(sell, "f-all", "500", "38.20", filled=True))
    run.event(event(sell, OrderEventType.CANCEL_REJECTED, "too-late", reason="too late to cancel"))
    execution = run.execution
    assert execution.record(sell).state is S.FILLED and execution.record(sell).filled_qty == D(500)
    assert execution.record(buy).state is S.CANCELLED  # cancelled before it was ever released
    assert execution.state is E.CANCELLED


def test_a_redelivered_cancel_command_changes_nothing() -> None:
    run = folded()
    run.cancel(cancel())
    execution = run.execution
    again = run.cancel(cancel())
    assert again.cancel is CancelVerdict.ALREADY_HANDLED
    assert again.duplicate and again.execution is execution and not again.remembered


def test_a_redelivered_cancel_command_changes_nothing_even_when_there_is_something_to_cancel_again() -> None:
    # The command id decides, not the state: a refused cancel returns an order to ACCEPTED, and a
    # redelivery of the same command must not cancel it a second time.
    run = folded("rfc_partial_then_fill")
    sell = run.execution.ticket_for_intent("oi_sell_sg_bank").ticket_id
    run.release(sell, at(1), "OMS-1")
    run.event(event(sell, OrderEventType.ORDER_ACCEPTED, "ack"))
    assert run.cancel(cancel()).cancel is CancelVerdict.ACCEPTED
    run.event(event(sell, OrderEventType.CANCEL_REJECTED, "refused", reason="venue closed"))
    assert run.execution.record(sell).state is S.ACCEPTED
    again = run.cancel(cancel())
    assert again.cancel is CancelVerdict.ALREADY_HANDLED and again.duplicate
    other = run.cancel(cancel("cxl-2", 40))
    assert other.cancel is CancelVerdict.ACCEPTED and other.cancel_requests == (sell,)


def test_a_cancel_while_every_open_ticket_is_pending_cancel_is_already_pending_and_logs_nothing() -> None:
    outcome = new_execution("sgd_multi_currency")
    mock = MockExecutionProvider(clock_start=T0)
    for ticket in outcome.tickets_to_submit:
        mock.script(ticket.ticket_id, MockAccept(), MockHold(), MockFill())
    run, _ = drive(outcome, mock)
    first = run.cancel(cancel())
    assert first.cancel is CancelVerdict.ACCEPTED and len(first.cancel_requests) == 2
    execution, seq, rows = run.execution, run.execution.seq, run.execution.row_count
    retry = run.cancel(cancel("cxl-2", 31))  # an operator's retry under a new command id
    assert retry.cancel is CancelVerdict.ALREADY_PENDING
    assert retry.duplicate and retry.execution is execution and retry.cancel_requests == ()
    assert (run.execution.seq, run.execution.row_count, run.execution.anomaly_count) == (seq, rows, 0)
    assert run.execution.cancel_request == cancel()  # the first effective request stays
    assert run.cancel(cancel("cxl-2", 32)).cancel is CancelVerdict.ALREADY_HANDLED


def test_cancelling_a_finished_execution_answers_nothing_to_cancel_and_logs_nothing() -> None:
    # Was: logged as a NOTHING_TO_CANCEL anomaly. An operator's retry leaves no trace now (issue #15).
    run, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    execution = run.execution
    outcome = run.cancel(cancel())
    assert outcome.cancel is CancelVerdict.NOTHING_TO_CANCEL
    assert outcome.duplicate and outcome.execution is execution and outcome.anomalies == ()
    assert execution.cancel_request is None and execution.state is E.FILLED and execution.anomaly_count == 0
    assert run.cancel(cancel()).cancel is CancelVerdict.ALREADY_HANDLED  # the command id is remembered
    assert all(a.code is not AnomalyCode.NOTHING_TO_CANCEL for e in run.entries for a in e.anomalies)


def test_a_cancel_without_a_history_cannot_tell_a_redelivery() -> None:
    # The handled command ids live in the history: without it, a redelivery is judged on the state.
    execution = request_cancel(new_execution().execution, cancel()).execution
    assert request_cancel(execution, cancel()).cancel is CancelVerdict.NOTHING_TO_CANCEL
    history = InMemoryHistory(commands={"cxl-1"})
    assert request_cancel(execution, cancel(), history).cancel is CancelVerdict.ALREADY_HANDLED


def test_marking_released_a_ticket_cancelled_before_release_asks_to_cancel_it_at_the_oms() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    cancelled = request_cancel(outcome.execution, cancel())
    marked = mark_released(cancelled.execution, sell, at(31), "OMS-9")
    assert marked.anomalies[0].code is AnomalyCode.RELEASED_AFTER_CANCEL
    assert marked.cancel_requests == (sell,)


# --- on_critical_rejection ----------------------------------------------------------------------------


def let_run() -> ExecutionPolicy:
    return policy_of(max_slippage_bps="25", on_critical_rejection=OnCriticalRejection.LET_RUN)


def fx_rejected_while_the_sell_works(policy: ExecutionPolicy) -> tuple[Folded, MockExecutionProvider, list[Outcome]]:
    """rfc_fx_reject: the FX (funding the BUY) is rejected while the independent SELL is still working."""
    outcome = new_execution("rfc_fx_reject", policy)
    sell, fx = ids(outcome.execution, "oi_sell_sg_bond", "oi_fx_usd_sgd")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(sell, MockAccept(), MockHold(), MockFill(None, D("99.5")))
    mock.script(fx, MockReject("no credit line for USD/SGD"))
    run, outcomes = drive(outcome, mock)
    return run, mock, outcomes


def test_policy_defaults_to_cancel_remaining_on_critical_rejection() -> None:
    assert POLICY.on_critical_rejection is OnCriticalRejection.CANCEL_REMAINING


def test_a_critical_rejection_cancels_the_working_sell_in_the_same_entry_under_cancel_remaining() -> None:
    run, mock, outcomes = fx_rejected_while_the_sell_works(POLICY)
    execution = run.execution
    sell, fx, buy = ids(execution, "oi_sell_sg_bond", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    rejection = next(o for o in outcomes if o.state_after is E.REJECTED and o.state_before is not E.REJECTED)
    assert [(c.ticket_id, c.kind, c.to_state) for c in rejection.changes] == [
        (fx, TicketEventKind.ORDER_REJECTED, S.REJECTED),
        (buy, TicketEventKind.DEPENDENCY_FAILED, S.CANCELLED),
        (sell, TicketEventKind.CANCEL_REQUESTED, S.PENDING_CANCEL),
    ]
    assert rejection.cancel_requests == (sell,) and rejection.tickets_to_submit == ()
    assert rejection.changed_tickets == (sell, fx, buy)  # ticket order
    request = rejection.execution.cancel_request
    assert request is not None and request.actor == POLICY_ACTOR and "on_critical_rejection" in (request.reason or "")
    assert rejection.execution.open_ticket_count == 1  # the SELL's cancel is in flight
    assert [c.args for c in mock.calls if c.method == "cancel_ticket"] == [(sell,)]
    # drive sent the cancel and fed the OMS's confirmation back
    assert execution.record(sell).state is S.CANCELLED and execution.record(sell).filled_qty == 0
    assert execution.open_ticket_count == 0 and execution.is_complete and execution.state is E.REJECTED
    assert_head_matches_log(run)


def test_a_critical_rejection_cancels_a_ticket_released_but_not_yet_handed_to_the_oms() -> None:
    run = folded("rfc_fx_reject")
    sell, fx = ids(run.execution, "oi_sell_sg_bond", "oi_fx_usd_sgd")
    run.release(fx, at(1), "OMS-FX")  # the SELL is released for submission, not yet marked
    rejected = run.event(event(fx, OrderEventType.ORDER_REJECTED, "rej", external_order_id="OMS-FX", reason="no"))
    record = rejected.execution.record(sell)
    assert record.state is S.CANCELLED and not record.is_submitted  # never handed over: nothing to send
    assert rejected.cancel_requests == () and tickets_awaiting_submission(rejected.execution) == ()
    assert rejected.execution.is_complete and rejected.execution.state is E.REJECTED
    # If the processor had submitted it anyway, marking it asks for a cancel at the OMS.
    marked = run.release(sell, at(2), "OMS-S")
    assert marked.anomalies[0].code is AnomalyCode.RELEASED_AFTER_CANCEL and marked.cancel_requests == (sell,)


def test_a_critical_rejection_leaves_the_sell_working_and_folds_its_fill_under_let_run() -> None:
    run, mock, outcomes = fx_rejected_while_the_sell_works(let_run())
    execution = run.execution
    sell, fx, buy = ids(execution, "oi_sell_sg_bond", "oi_fx_usd_sgd", "oi_buy_us_eq_etf")
    assert not any(c.method == "cancel_ticket" for c in mock.calls)
    assert all(o.cancel_requests == () for o in outcomes)
    assert execution.state is E.REJECTED and execution.cancel_request is None
    assert execution.record(sell).state is S.ACCEPTED and execution.record(buy).state is S.CANCELLED
    assert execution.open_ticket_count == 1 and not execution.is_complete
    mock.resume(sell)
    _, later = drive(run, mock)
    filled = run.execution.record(sell)
    assert (filled.state, filled.filled_qty) == (S.FILLED, D(2000))
    assert run.execution.state is E.REJECTED  # a critical rejection stays the execution's state
    # is_complete flips exactly with the last ticket turning terminal
    completed = [o for o in later if o.execution.is_complete]
    assert completed and completed[0].changes[-1].ticket_id == sell and completed[0].changes[-1].to_state is S.FILLED
    assert all(not o.execution.is_complete for o in outcomes + later[: later.index(completed[0])])
    assert_head_matches_log(run)


def test_an_operator_can_still_cancel_what_let_run_left_working() -> None:
    run, mock, _ = fx_rejected_while_the_sell_works(let_run())
    sell = run.execution.ticket_for_intent("oi_sell_sg_bond").ticket_id
    outcome = run.cancel(cancel())
    assert outcome.cancel is CancelVerdict.ACCEPTED and outcome.cancel_requests == (sell,)
    assert outcome.execution.cancel_request is not None and outcome.execution.cancel_request.actor == ORIGIN.actor
    mock.cancel_ticket(sell)
    drive(run, mock)
    assert run.execution.is_complete and run.execution.state is E.REJECTED


def test_a_cancel_while_the_policy_cancel_is_pending_is_already_pending() -> None:
    outcome = new_execution("rfc_fx_reject")
    sell, fx = ids(outcome.execution, "oi_sell_sg_bond", "oi_fx_usd_sgd")
    run = Folded.start(outcome)
    run.release(sell, at(1), "OMS-S")
    run.release(fx, at(1), "OMS-FX")
    run.event(event(sell, OrderEventType.ORDER_ACCEPTED, "ack", external_order_id="OMS-S"))
    rejected = run.event(event(fx, OrderEventType.ORDER_REJECTED, "rej", external_order_id="OMS-FX", reason="no"))
    assert rejected.cancel_requests == (sell,)
    retry = run.cancel(cancel())
    assert retry.cancel is CancelVerdict.ALREADY_PENDING and retry.duplicate
    request = run.execution.cancel_request
    assert request is not None and request.actor == POLICY_ACTOR


def test_a_critical_rejection_in_the_sgd_proposal_cancels_the_other_sell_and_every_dependant() -> None:
    # sggb SELL funds the FX and the REIT BUY (critical under critical_sells=FUNDING); sgcorp still works.
    outcome = new_execution("sgd_multi_currency")
    sggb, sgcorp, fx, reit, usd = ids(outcome.execution, "oi_sell_sggb_2031", "oi_sell_sgcorp_2029", "oi_fx_usd_sgd",
                                      "oi_buy_sg_reit", "oi_buy_us_eq_etf")
    mock = MockExecutionProvider(clock_start=T0)
    mock.script(sggb, MockReject("bond not borrowable"))
    mock.script(sgcorp, MockAccept(), MockFill(D(1000), D("0.99")), MockHold(), MockFill())
    run, outcomes = drive(outcome, mock)
    execution = run.execution
    rejection = next(o for o in outcomes if o.state_after is E.REJECTED)
    assert rejection.cancel_requests == (sgcorp,)
    assert {c.ticket_id for c in rejection.changes if c.kind is TicketEventKind.DEPENDENCY_FAILED} == {fx, reit, usd}
    assert [(t, execution.record(t).state) for t in (sggb, sgcorp, fx, reit, usd)] == [
        (sggb, S.REJECTED), (sgcorp, S.CANCELLED), (fx, S.CANCELLED), (reit, S.CANCELLED), (usd, S.CANCELLED)]
    assert execution.record(sgcorp).filled_qty == D(1000)  # what filled before the cancel stays
    assert execution.state is E.REJECTED and execution.is_complete
    assert not mock.held()
    assert_head_matches_log(run)


def test_a_dry_run_is_never_cancelled_by_the_policy() -> None:
    execution = new_execution("rfc_fx_reject", policy_of(max_slippage_bps="25", dry_run=True)).execution
    assert execution.cancel_request is None and execution.state is E.CREATED


# --- attempts: re-executing a proposal version ----------------------------------------------------------


def test_a_re_execution_gets_its_own_ticket_ids_and_keeps_its_attempt_number() -> None:
    first = new_execution("rfc_accept_all", execution_id="exec_a").execution
    second = new_execution("rfc_accept_all", execution_id="exec_b", attempt=2).execution
    assert first.definition.attempt == 1 and second.definition.attempt == 2
    assert second.tickets == generate_tickets(load_sample("rfc_accept_all"), POLICY, 2)
    assert {t.ticket_id for t in first.tickets}.isdisjoint({t.ticket_id for t in second.tickets})
    assert [t.intent_id for t in first.tickets] == [t.intent_id for t in second.tickets]
    # the request hash names the request, not the attempt
    assert first.definition.request_hash == second.definition.request_hash


def test_a_re_execution_replays_to_the_same_ticket_ids() -> None:
    run, _ = drive(new_execution("rfc_accept_all", attempt=3), MockExecutionProvider(clock_start=T0))
    assert replay(run.entries).tickets == run.execution.tickets == generate_tickets(
        load_sample("rfc_accept_all"), POLICY, 3)
    assert_head_matches_log(run)


# --- release marks, unknown tickets, duplicates -------------------------------------------------------


def test_marking_released_moves_to_submitted_once() -> None:
    outcome = new_execution("rfc_accept_all")
    sell = outcome.tickets_to_submit[0].ticket_id
    marked = mark_released(outcome.execution, sell, at(1), "OMS-1")
    record = marked.execution.record(sell)
    assert (record.state, record.submitted_at, record.external_order_id) == (S.SUBMITTED, at(1), "OMS-1")
    assert marked.entry is not None
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
    run = folded()
    execution = run.execution
    stray = event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "e-stray")
    outcome = run.event(stray)
    assert outcome.anomalies[0].code is AnomalyCode.UNKNOWN_TICKET and outcome.anomalies[0].ticket_id == stray.ticket_id
    assert outcome.execution.records == execution.records and outcome.execution.state is execution.state
    assert outcome.changed_tickets == () and outcome.execution.anomaly_count == 1
    assert outcome.remembered.unrouted == ((("exec_001", stray.ticket_id, "e-stray"), (stray.report_key,)),)
    assert run.event(stray).duplicate
    other = event("tkt_000000000000", OrderEventType.ORDER_REJECTED, "e-stray")
    reused = run.event(other)
    assert reused.anomalies[0].code is AnomalyCode.UNKNOWN_TICKET  # same id, other content: logged once more
    assert run.history.unrouted(("exec_001", stray.ticket_id, "e-stray")) == (stray.report_key, other.report_key)


def test_a_report_that_leaves_the_record_equal_lists_no_changed_ticket() -> None:
    run = folded("rfc_partial_then_fill")
    sell = run.execution.tickets[0].ticket_id
    run.release(sell, at(0), "OMS-1")
    run.event(event(sell, OrderEventType.ORDER_ACCEPTED, "ack", seconds=1))
    before = run.execution.record(sell)
    status = run.event(event(sell, OrderEventType.ORDER_ACCEPTED, "ack-status", seconds=1))  # logged: KEEP
    assert status.entry is not None and status.execution.record(sell) == before
    assert status.changed_tickets == ()


def test_an_event_for_another_execution_is_recorded_as_an_anomaly() -> None:
    execution = new_execution().execution
    stray = event(execution.tickets[0].ticket_id, OrderEventType.ORDER_ACCEPTED, "e1", execution_id="exec_other")
    assert apply_order_event(execution, stray).anomalies[0].code is AnomalyCode.WRONG_EXECUTION


def test_an_event_no_rule_allows_is_logged_with_from_state_event_and_reason() -> None:
    run, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    sell = run.execution.tickets[0].ticket_id
    rejected_late = event(sell, OrderEventType.ORDER_REJECTED, "late-reject", reason="?")
    outcome = run.event(rejected_late)
    (anomaly,) = outcome.anomalies
    assert (anomaly.code, anomaly.from_state, anomaly.kind, anomaly.event_id) == (
        AnomalyCode.INVALID_TRANSITION, S.FILLED, TicketEventKind.ORDER_REJECTED, "late-reject")
    assert outcome.entry is not None
    assert outcome.entry.input == rejected_late and outcome.execution.record(sell).state is S.FILLED


def test_a_duplicate_event_returns_the_same_execution_and_logs_nothing() -> None:
    run = folded("rfc_accept_all")
    sell = run.execution.tickets[0].ticket_id
    run.release(sell, at(1))
    report = fill_event(sell, "f1", "40", "20.5")
    once = run.event(report)
    assert once.remembered.fills == ((sell, once.changes[0].fill),)
    twice = run.event(report)
    assert twice.duplicate and twice.execution is once.execution and twice.tickets_to_submit == ()
    assert not twice.remembered and twice.changed_tickets == ()
    resent = run.event(fill_event(sell, "f1", "40", "20.5", event_id="resent-under-a-new-id"))
    assert resent.duplicate and resent.execution is once.execution


def test_the_log_is_numbered_from_one_and_the_head_counts_it() -> None:
    # Was: the execution carried its log as an immutable tuple. The head now keeps only the counts;
    # entries are handed out one per outcome, numbered on from the head's seq.
    run, outcomes = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    logged = [o.entry for o in outcomes if o.entry is not None]
    assert run.entries == logged
    assert [entry.seq for entry in logged] == list(range(1, len(logged) + 1))
    for outcome in outcomes:
        assert outcome.execution.seq == (outcome.entry.seq if outcome.entry else outcome.execution.seq)
    assert run.execution.seq == len(logged)
    assert run.execution.row_count == sum(len(entry.rows()) for entry in logged)
    with pytest.raises(AttributeError):
        logged[0].seq = 5  # type: ignore[misc]


def test_apply_input_refuses_a_second_creation() -> None:
    outcome = new_execution()
    assert outcome.entry is not None
    with pytest.raises(ValueError):
        apply_input(outcome.execution, outcome.entry.input)


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
    lambda partial, critical, allow, on_rejection: policy_of(
        max_slippage_bps="25", partial_funding=partial, critical_sells=critical, allow_partial_fills=allow,
        on_critical_rejection=on_rejection),
    st.sampled_from(list(PartialFunding)), st.sampled_from(list(CriticalSells)), st.booleans(),
    st.sampled_from(list(OnCriticalRejection)),
)


def assert_step_invariants(before: Execution, result: Outcome) -> None:
    """What holds for every outcome: the tally is the count, the counters follow the entry, and the
    changed tickets are those whose records moved."""
    after = result.execution
    definition = after.definition
    facts = execution_facts(definition.tickets, after.records, definition.dependants, definition.policy,
                            after.cancel_request is not None)
    assert after.tally == TicketTally.of(definition.tickets, after.records, definition.dependants, definition.policy)
    assert after.tally.facts(after.cancel_request is not None) == facts
    assert after.open_ticket_count == sum(not r.is_terminal for r in after.records.values())
    assert after.is_complete is all(r.is_terminal for r in after.records.values())
    if result.entry is None:
        assert result.execution is before and result.changed_tickets == ()
        return
    entry = result.entry
    assert entry.seq == before.seq + 1 == after.seq
    assert entry.row_count == len(entry.rows())
    assert after.row_count == before.row_count + entry.row_count
    assert result.first_row_seq == before.row_count + 1
    assert after.anomaly_count == before.anomaly_count + len(entry.anomalies)
    moved = [t.ticket_id for t in definition.tickets if after.records[t.ticket_id] != before.records[t.ticket_id]]
    assert result.changed_tickets == tuple(moved)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLE_NAMES), policies, st.data())
def test_random_executions_keep_their_invariants_under_duplicate_and_reordered_delivery(
    sample: str, policy: ExecutionPolicy, data: st.DataObject
) -> None:
    created = new_execution(sample, policy)
    run = Folded.start(created)
    mock = MockExecutionProvider(clock_start=T0)
    for ticket in run.execution.tickets:
        mock.script(ticket.ticket_id, *data.draw(mock_scripts(ticket.order_quantity)))
    cancel_at = data.draw(st.one_of(st.none(), st.integers(0, 3)))

    inputs: list[Any] = []  # everything applied after creation, in order (duplicates included)
    delivered: list[OrderEvent] = []
    to_submit = list(created.tickets_to_submit)
    policy_cancelled = False

    def apply(value: Any) -> Outcome:
        nonlocal policy_cancelled
        before = run.execution
        result = run.apply(value)
        inputs.append(value)
        execution = result.execution
        assert_step_invariants(before, result)
        for ticket in result.tickets_to_submit:  # released only once every dependency funds it
            for dependency in ticket.dependencies:
                dep = execution.record(dependency)
                assert dep.state is S.FILLED or (dep.state is S.CANCELLED and dep.filled_qty > 0)
        if execution.cancel_request is not None:
            assert result.tickets_to_submit == ()  # nothing more is released once cancelling
        turned_rejected = execution.tally.critical_rejected and not before.tally.critical_rejected
        if turned_rejected and before.cancel_request is None:
            if policy.on_critical_rejection is OnCriticalRejection.CANCEL_REMAINING:
                # In the very entry: every open ticket's cancel is in flight, the policy asked for it.
                # A cancel request is recorded only when something was open to cancel.
                if execution.cancel_request is not None:
                    policy_cancelled = True
                    assert execution.cancel_request.actor == POLICY_ACTOR
                else:  # nothing was open: the policy changed nothing
                    assert not any(c.note.startswith("execution rejected") for c in result.changes)
                assert all(r.is_terminal or r.state is S.PENDING_CANCEL for r in execution.records.values())
                pending = {t for t, r in execution.records.items() if r.state is S.PENDING_CANCEL}
                assert pending - {t for t, r in before.records.items() if r.state is S.PENDING_CANCEL} <= set(
                    result.cancel_requests)
            else:
                assert execution.cancel_request is None
        to_submit.extend(result.tickets_to_submit)
        for ticket_id in result.cancel_requests:
            mock.cancel_ticket(ticket_id)
        return result

    for round_no in range(60):
        awaiting = {t.ticket_id for t in tickets_awaiting_submission(run.execution)}
        batch = [t for t in to_submit if t.ticket_id in awaiting]  # a processor re-checks before submitting
        to_submit.clear()
        if batch:
            result = mock.submit_tickets(run.execution.execution_id, batch)
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

    execution = run.execution
    # The log replays to the same execution; the head round-trips exactly; its counters match the log.
    assert_head_matches_log(run)
    # Duplicate delivery never matters: applying each input once gives the same execution.
    seen: set[int] = set()
    once = Folded.start(new_execution(sample, policy))
    for value in inputs:
        if isinstance(value, OrderEvent):
            if id(value) in seen:
                continue
            seen.add(id(value))
        once.apply(value)
    assert once.execution == execution
    # Tickets whose funding failed were never handed to the OMS.
    submitted = set(submitted_ids(mock))
    for record in execution.records.values():
        if record.state is S.CANCELLED and not record.is_submitted:
            assert record.ticket_id not in submitted
        assert record.filled_qty <= record.order_qty  # the mock never overfills
    # Every order the mock accepted ends, and nothing waits for a release that cannot come.
    assert execution.is_complete and execution.open_ticket_count == 0
    label(f"final state {execution.state.value}")
    label(f"cancel requests sent: {any(c.method == 'cancel_ticket' for c in mock.calls)}")
    label(f"cancelled by the policy: {policy_cancelled}")
    label(f"dependants scaled: {any(c.kind is TicketEventKind.DEPENDENCY_SCALED for e in run.entries for c in e.changes)}")
    label(f"anomalies: {sorted({(a.code.value, a.from_state, a.kind) for e in run.entries for a in e.anomalies})}")


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
        restored = Execution.from_primitive(json.loads(json.dumps(primitive)), step.execution.definition)
        assert restored == step.execution and restored.to_primitive() == primitive


def test_the_head_primitive_leaves_the_definition_out_and_refuses_another_one() -> None:
    execution = new_execution("rfc_accept_all").execution
    primitive = execution.to_primitive()
    assert {"execution_id", "tickets", "state", "seq", "row_count", "anomaly_count", "cancel_request"} <= set(primitive)
    assert not {"definition", "log", "handled_commands", "unrouted_events"} & set(primitive)
    other = new_execution("rfc_accept_all", execution_id="exec_other").execution.definition
    with pytest.raises(ValueError):
        Execution.from_primitive(primitive, other)


def test_replay_refuses_a_log_that_does_not_start_with_creation() -> None:
    run, _ = drive(new_execution("rfc_accept_all"), MockExecutionProvider(clock_start=T0))
    with pytest.raises(ValueError):
        replay(run.entries[1:])


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


def test_unrouted_events_are_remembered_by_the_history_not_the_head() -> None:
    # Was: unrouted events survived the execution's primitive round trip. They left the head: the
    # history remembers them, so a redelivery after a restore (head from JSON) is still a duplicate.
    run = folded()
    stray = event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "e-stray")
    run.event(stray)
    assert "e-stray" not in json.dumps(run.execution.to_primitive())
    restored = Execution.from_primitive(json.loads(json.dumps(run.execution.to_primitive())), run.execution.definition)
    assert restored == run.execution
    assert apply_order_event(restored, stray, run.history).duplicate
    assert not apply_order_event(restored, stray).duplicate  # without its history, the fold cannot tell
