from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain.definition import ExecutionDefinition, ProposalRef
from execution_domain.execution_state import (
    PRECEDENCE,
    ExecutionState,
    TicketTally,
    derive_execution_state,
    execution_facts,
    state_from_facts,
)
from execution_domain.fills import FillLedger
from execution_domain.policy import CriticalSells, ExecutionPolicy
from execution_domain.request import Actor, RequestOrigin
from execution_domain.ticket_state import TERMINAL_TICKET_STATES, TicketRecord, TicketState
from execution_domain.tickets import generate_tickets
from testkit.domain import DOMAIN_DOC, POLICY, at, load_sample, policy_of, precedence_table_markdown

S, E = TicketState, ExecutionState
D = Decimal

PS, SUB, ACC, PF, PC, F, CXL, REJ = (S.PENDING_SUBMIT, S.SUBMITTED, S.ACCEPTED, S.PARTIAL_FILL, S.PENDING_CANCEL,
                                     S.FILLED, S.CANCELLED, S.REJECTED)


def definition(sample: str, policy: ExecutionPolicy = POLICY) -> ExecutionDefinition:
    artifact = load_sample(sample)
    return ExecutionDefinition("exec_x", ProposalRef.of(artifact), policy, generate_tickets(artifact, policy),
                               RequestOrigin(Actor("a", "b")), "sha256:" + "0" * 64, at(0))


def state_of(
    sample: str, spec: list[tuple[TicketState, str]], *, policy: ExecutionPolicy = POLICY, cancel: bool = False
) -> ExecutionState:
    """``spec``: (state, filled qty) per ticket, in ticket order."""
    d = definition(sample, policy)
    records = {}
    for ticket, (state, filled) in zip(d.tickets, spec, strict=True):
        records[ticket.ticket_id] = TicketRecord(
            ticket.ticket_id, state, ticket.order_quantity, FillLedger(filled_qty=D(filled), notional=D(filled)),
            submitted_at=None if state is PS else at(1),
        )
    return derive_execution_state(d.tickets, records, d.dependants, policy, cancel)


# rfc_accept_all: SELL 100 -> FX 1500 -> BUY 10
R = "rfc_accept_all"
# rfc_fx_reject: SELL 2000 (no dependants), FX 1500 (no dependencies), BUY 10 <- FX
X = "rfc_fx_reject"


def policy(**fields: object) -> ExecutionPolicy:
    return policy_of(max_slippage_bps="25", **fields)


CASES = [
    ("nothing released", R, [(PS, "0")] * 3, POLICY, False, E.CREATED),
    ("first ticket handed to the OMS", R, [(SUB, "0"), (PS, "0"), (PS, "0")], POLICY, False, E.SUBMITTED),
    ("every ticket accepted", X, [(ACC, "0")] * 3, POLICY, False, E.ACCEPTED),
    ("not all accepted yet", X, [(ACC, "0"), (ACC, "0"), (PS, "0")], POLICY, False, E.SUBMITTED),
    ("some fill", R, [(PF, "50"), (PS, "0"), (PS, "0")], POLICY, False, E.PARTIALLY_FILLED),
    ("every ticket filled", R, [(F, "100"), (F, "1500"), (F, "10")], POLICY, False, E.FILLED),
    ("partial then cancelled, partial fills allowed", R, [(F, "100"), (CXL, "700"), (F, "4")], POLICY, False, E.FILLED),
    ("partial then cancelled, partial fills not allowed", R, [(F, "100"), (CXL, "700"), (F, "4")],
     policy(allow_partial_fills=False), False, E.PARTIALLY_FILLED),
    ("fx with a dependent buy rejected", R, [(F, "100"), (REJ, "0"), (CXL, "0")], POLICY, False, E.REJECTED),
    ("fx rejected while other tickets still work", X, [(PF, "10"), (REJ, "0"), (CXL, "0")], POLICY, False, E.REJECTED),
    ("buy rejected is not critical: done, incomplete", X, [(F, "2000"), (F, "1500"), (REJ, "0")], POLICY, False,
     E.PARTIALLY_FILLED),
    ("funding sell rejected, critical_sells FUNDING", R, [(REJ, "0"), (CXL, "0"), (CXL, "0")], POLICY, False, E.REJECTED),
    ("funding sell rejected, critical_sells NONE", R, [(REJ, "0"), (CXL, "0"), (CXL, "0")],
     policy(critical_sells=CriticalSells.NONE), False, E.REJECTED),  # nothing filled, a ticket rejected
    ("sell without dependants rejected, FUNDING", X, [(REJ, "0"), (F, "1500"), (F, "10")], POLICY, False, E.PARTIALLY_FILLED),
    ("sell without dependants rejected, ALL", X, [(REJ, "0"), (F, "1500"), (F, "10")],
     policy(critical_sells=CriticalSells.ALL), False, E.REJECTED),
    ("cancel requested, all terminal, some cancelled", R, [(F, "100"), (CXL, "0"), (CXL, "0")], POLICY, True, E.CANCELLED),
    ("cancel requested but every fill won the race", R, [(F, "100"), (F, "1500"), (F, "10")], POLICY, True, E.FILLED),
    ("cancel requested, cancels still pending", R, [(F, "100"), (PC, "10"), (PS, "0")], POLICY, True, E.PARTIALLY_FILLED),
    ("everything cancelled by the OMS, nothing filled", X, [(CXL, "0")] * 3, POLICY, False, E.CANCELLED),
]


@pytest.mark.parametrize(("name", "sample", "spec", "policy_", "cancel", "expected"), CASES, ids=[c[0] for c in CASES])
def test_execution_state_precedence(
    name: str, sample: str, spec: list[tuple[TicketState, str]], policy_: ExecutionPolicy, cancel: bool,
    expected: ExecutionState,
) -> None:
    assert state_of(sample, spec, policy=policy_, cancel=cancel) is expected


def test_every_precedence_row_is_exercised_by_a_case() -> None:
    hit = set()
    for _, sample, spec, policy_, cancel, _ in CASES:
        d = definition(sample, policy_)
        records = {
            t.ticket_id: TicketRecord(t.ticket_id, s, t.order_quantity, FillLedger(filled_qty=D(q), notional=D(q)),
                                      submitted_at=None if s is PS else at(1))
            for t, (s, q) in zip(d.tickets, spec, strict=True)
        }
        facts = execution_facts(d.tickets, records, d.dependants, policy_, cancel)
        hit.add(next(i for i, row in enumerate(PRECEDENCE) if row.condition(facts)))
    assert hit == set(range(len(PRECEDENCE)))


ticket_states = st.sampled_from(list(S))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ticket_states, st.integers(0, 12000)), min_size=5, max_size=5),
       st.sampled_from(list(CriticalSells)), st.booleans(), st.booleans())
def test_execution_state_properties(
    spec: list[tuple[TicketState, int]], critical: CriticalSells, allow_partial: bool, cancel: bool
) -> None:
    policy_ = policy(critical_sells=critical, allow_partial_fills=allow_partial)
    spec_ = [(s, "0" if s in (PS, SUB, ACC, REJ) else str(q)) for s, q in spec]
    state = state_of("sgd_multi_currency", spec_, policy=policy_, cancel=cancel)
    assert state is state_of("sgd_multi_currency", spec_, policy=policy_, cancel=cancel)  # a pure function
    all_terminal = all(s in TERMINAL_TICKET_STATES for s, _ in spec_)
    if state is E.FILLED:
        assert all_terminal
        assert all(s is F or (s is CXL and D(q) > 0 and allow_partial) for s, q in spec_)
    fx_state = spec_[2][0]  # the FX funds the US ETF BUY
    if fx_state is REJ:
        assert state is E.REJECTED
    if all(s is PS for s, _ in spec_):
        assert state is E.CREATED


# --- the tally: counts kept ticket by ticket --------------------------------------------------------


def record_of(ticket_id: str, order_qty: Decimal, state: TicketState, filled: int, submitted: bool) -> TicketRecord:
    filled_qty = D(0) if state in (PS, SUB, ACC, REJ) else D(filled)
    return TicketRecord(ticket_id, state, order_qty, FillLedger(filled_qty=filled_qty, notional=filled_qty),
                        submitted_at=at(1) if submitted or state is not PS else None)


record_specs = st.tuples(ticket_states, st.integers(0, 12000), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["sgd_multi_currency", "rfc_accept_all", "rfc_fx_reject", "usd_cash_flow_eur"]),
       st.sampled_from(list(CriticalSells)), st.booleans(), st.data())
def test_a_tally_moved_ticket_by_ticket_equals_counting_every_ticket(
    sample: str, critical: CriticalSells, allow_partial: bool, data: st.DataObject
) -> None:
    policy_ = policy(critical_sells=critical, allow_partial_fills=allow_partial)
    d = definition(sample, policy_)
    tickets = d.tickets
    records = {
        t.ticket_id: record_of(t.ticket_id, t.order_quantity, *data.draw(record_specs)) for t in tickets
    }
    tally = TicketTally.of(tickets, records, d.dependants, policy_)
    moves = data.draw(st.lists(st.tuples(st.integers(0, len(tickets) - 1), record_specs), max_size=25))
    for index, spec in moves:
        ticket = tickets[index]
        after = record_of(ticket.ticket_id, ticket.order_quantity, *spec)
        tally = tally.moved(ticket, records[ticket.ticket_id], after, d.dependants, policy_)
        records[ticket.ticket_id] = after
        assert tally == TicketTally.of(tickets, records, d.dependants, policy_)
        for cancel in (False, True):
            facts = execution_facts(tickets, records, d.dependants, policy_, cancel)
            assert tally.facts(cancel) == facts
            assert state_from_facts(tally.facts(cancel)) is derive_execution_state(
                tickets, records, d.dependants, policy_, cancel)
        assert tally.open == sum(not r.is_terminal for r in records.values())


def test_a_move_that_changes_no_count_returns_the_same_tally() -> None:
    d = definition(R)
    sell = d.tickets[0]
    partial = record_of(sell.ticket_id, sell.order_quantity, PF, 10, True)
    records = {t.ticket_id: record_of(t.ticket_id, t.order_quantity, PS, 0, False) for t in d.tickets}
    records[sell.ticket_id] = partial
    tally = TicketTally.of(d.tickets, records, d.dependants, POLICY)
    more = record_of(sell.ticket_id, sell.order_quantity, PF, 20, True)
    assert tally.moved(sell, partial, more, d.dependants, POLICY) is tally
    assert (tally.tickets, tally.open, tally.filled, tally.submitted) == (3, 3, 1, 1)


def test_the_domain_doc_shows_the_precedence_table_as_coded() -> None:
    assert precedence_table_markdown() in DOMAIN_DOC.read_text(encoding="utf-8")
