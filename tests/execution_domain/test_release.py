from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import event as label
from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain.fills import FillLedger, FillReportingMode
from execution_domain.policy import ExecutionPolicy, OrderType, PartialFunding, TimeInForce
from execution_domain.proposal import Side
from execution_domain.release import (
    DependencyStatus,
    ReleaseResolution,
    TicketGraph,
    dependency_verdict,
    resolve_releases,
)
from execution_domain.ticket_state import TERMINAL_TICKET_STATES, TicketEventKind, TicketRecord, TicketState
from execution_domain.tickets import SecurityOrderTicket, Ticket, generate_tickets
from testkit.domain import POLICY, at, load_sample, policy_of

S = TicketState
D = Decimal
CANCEL_PARTIAL = policy_of(max_slippage_bps="25", partial_funding=PartialFunding.CANCEL)


def sgd_tickets() -> dict[str, Ticket]:
    # SELL sggb (9000), SELL sgcorp (6000), FX USD 10248 <- both SELLs, BUY SG REIT 300 <- sggb, BUY US ETF 20 <- FX
    return {t.intent_id: t for t in generate_tickets(load_sample("sgd_multi_currency"), POLICY)}


def record(
    ticket: Ticket, state: TicketState = S.PENDING_SUBMIT, filled: str = "0", *, released_for_submission: bool = False
) -> TicketRecord:
    ledger = FillLedger(filled_qty=D(filled), notional=D(filled))
    return TicketRecord(ticket.ticket_id, state, ticket.order_quantity, ledger,
                        released_for_submission=released_for_submission,
                        submitted_at=None if state is S.PENDING_SUBMIT else at(0))


def records_for(tickets: dict[str, Ticket], **overrides: tuple[TicketState, ...] | tuple[TicketState, str]
                ) -> dict[str, TicketRecord]:
    out = {}
    for intent_id, ticket in tickets.items():
        spec = overrides.get(intent_id)
        out[ticket.ticket_id] = record(ticket, *spec) if spec else record(ticket)
    return out


def resolve(
    tickets: dict[str, Ticket], records: dict[str, TicketRecord], policy: ExecutionPolicy = POLICY, *, halted: bool = False
) -> ReleaseResolution:
    return resolve_releases(tuple(tickets.values()), records, policy, at=at(9), halted=halted)


# --- how a dependency funds its dependants ---------------------------------------------------------

FX_QTY = "10248"


@pytest.mark.parametrize(
    ("state", "filled", "policy", "status", "fraction"),
    [
        (S.PENDING_SUBMIT, "0", POLICY, DependencyStatus.WAITING, None),
        (S.SUBMITTED, "0", POLICY, DependencyStatus.WAITING, None),
        (S.ACCEPTED, "0", POLICY, DependencyStatus.WAITING, None),
        (S.PARTIAL_FILL, "5000", POLICY, DependencyStatus.WAITING, None),
        (S.PENDING_CANCEL, "5000", POLICY, DependencyStatus.WAITING, None),
        (S.FILLED, FX_QTY, POLICY, DependencyStatus.FUNDED, Fraction(1)),
        (S.FILLED, "11000", POLICY, DependencyStatus.FUNDED, Fraction(1)),  # an overfill funds no more than all
        (S.REJECTED, "0", POLICY, DependencyStatus.FAILED, None),
        (S.CANCELLED, "0", POLICY, DependencyStatus.FAILED, None),
        (S.CANCELLED, "5124", POLICY, DependencyStatus.FUNDED, Fraction(1, 2)),
        (S.CANCELLED, "5124", CANCEL_PARTIAL, DependencyStatus.FAILED, None),
    ],
)
def test_dependency_verdict(
    state: TicketState, filled: str, policy: ExecutionPolicy, status: DependencyStatus, fraction: Fraction | None
) -> None:
    fx = sgd_tickets()["oi_fx_usd_sgd"]
    verdict = dependency_verdict(fx, record(fx, state, filled), policy)
    assert verdict.status is status
    if fraction is not None:
        assert verdict.fraction == fraction
    if status is DependencyStatus.FAILED:
        assert fx.ticket_id in verdict.reason


# --- resolution --------------------------------------------------------------------------------------


def test_tickets_without_dependencies_are_released_at_once() -> None:
    tickets = sgd_tickets()
    resolution = resolve(tickets, records_for(tickets))
    assert resolution.released == (tickets["oi_sell_sggb_2031"].ticket_id, tickets["oi_sell_sgcorp_2029"].ticket_id)
    assert resolution.steps == ()


def test_nothing_is_submitted_while_halted() -> None:
    tickets = sgd_tickets()
    records = records_for(tickets)
    resolution = resolve(tickets, records, halted=True)
    assert resolution.released == () and resolution.records is records


def test_a_ticket_is_submitted_only_when_all_its_dependencies_are_filled() -> None:
    tickets = sgd_tickets()
    one_sell_filled = records_for(
        tickets, oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.PARTIAL_FILL, "10")
    )
    resolution = resolve(tickets, one_sell_filled)
    assert resolution.released == (tickets["oi_buy_sg_reit"].ticket_id,)  # depends on sggb only; FX waits for both
    both_filled = records_for(tickets, oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"))
    assert tickets["oi_fx_usd_sgd"].ticket_id in resolve(tickets, both_filled).released


def test_an_already_released_ticket_is_not_released_again() -> None:
    tickets = sgd_tickets()
    records = records_for(tickets)
    records[tickets["oi_sell_sggb_2031"].ticket_id] = record(tickets["oi_sell_sggb_2031"], released_for_submission=True)
    assert tickets["oi_sell_sggb_2031"].ticket_id not in resolve(tickets, records).released


@pytest.mark.parametrize(("state", "filled"), [(S.REJECTED, "0"), (S.CANCELLED, "0")])
def test_dependants_of_an_unfunded_fx_are_cancelled_without_release(state: TicketState, filled: str) -> None:
    tickets = sgd_tickets()
    records = records_for(
        tickets,
        oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"),
        oi_buy_sg_reit=(S.FILLED, "300"), oi_fx_usd_sgd=(state, filled),
    )
    resolution = resolve(tickets, records)
    buy = tickets["oi_buy_us_eq_etf"].ticket_id
    assert resolution.released == ()
    assert resolution.records[buy].state is S.CANCELLED and not resolution.records[buy].released_for_submission
    (step,) = resolution.steps
    assert step.change is not None and step.change.kind is TicketEventKind.DEPENDENCY_FAILED
    assert tickets["oi_fx_usd_sgd"].ticket_id in (resolution.records[buy].reason or "")


def test_a_failed_dependency_cascades_down_the_chain_in_one_pass() -> None:
    tickets = sgd_tickets()
    records = records_for(tickets, oi_sell_sggb_2031=(S.REJECTED,), oi_sell_sgcorp_2029=(S.FILLED, "6000"))
    resolution = resolve(tickets, records)
    for intent_id in ("oi_fx_usd_sgd", "oi_buy_sg_reit", "oi_buy_us_eq_etf"):
        assert resolution.records[tickets[intent_id].ticket_id].state is S.CANCELLED
    assert len(resolution.steps) == 3


def test_a_partially_filled_fx_scales_its_buys_down_to_whole_units_by_default() -> None:
    tickets = sgd_tickets()
    records = records_for(
        tickets,
        oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"),
        oi_buy_sg_reit=(S.FILLED, "300"), oi_fx_usd_sgd=(S.CANCELLED, "6000"),
    )
    resolution = resolve(tickets, records)
    buy = tickets["oi_buy_us_eq_etf"].ticket_id
    assert resolution.released == (buy,)
    assert resolution.records[buy].order_qty == D(11)  # 20 * 6000 / 10248 = 11.7 -> 11
    change = resolution.steps[0].change
    assert change is not None and change.kind is TicketEventKind.DEPENDENCY_SCALED


def test_a_partially_filled_fx_cancels_its_buys_under_partial_funding_cancel() -> None:
    tickets = sgd_tickets()
    records = records_for(
        tickets,
        oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"),
        oi_buy_sg_reit=(S.FILLED, "300"), oi_fx_usd_sgd=(S.CANCELLED, "6000"),
    )
    resolution = resolve(tickets, records, CANCEL_PARTIAL)
    assert resolution.records[tickets["oi_buy_us_eq_etf"].ticket_id].state is S.CANCELLED
    assert resolution.released == ()


def test_a_funded_fraction_that_rounds_to_nothing_cancels_the_dependant() -> None:
    tickets = sgd_tickets()
    records = records_for(
        tickets,
        oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"),
        oi_buy_sg_reit=(S.FILLED, "300"), oi_fx_usd_sgd=(S.CANCELLED, "100"),  # 20 * 100/10248 < 1
    )
    resolution = resolve(tickets, records)
    assert resolution.records[tickets["oi_buy_us_eq_etf"].ticket_id].state is S.CANCELLED
    assert "rounds" in (resolution.records[tickets["oi_buy_us_eq_etf"].ticket_id].reason or "")


def test_the_smallest_funded_fraction_among_dependencies_wins_and_partial_sells_scale_the_fx() -> None:
    tickets = sgd_tickets()
    records = records_for(tickets, oi_sell_sggb_2031=(S.CANCELLED, "4500"), oi_sell_sgcorp_2029=(S.CANCELLED, "4800"))
    resolution = resolve(tickets, records)
    fx = tickets["oi_fx_usd_sgd"].ticket_id
    reit = tickets["oi_buy_sg_reit"].ticket_id
    assert resolution.records[fx].order_qty == D("5124")  # min(1/2, 4/5) of 10248 USD
    assert resolution.records[reit].order_qty == D(150)  # 1/2 of 300
    assert set(resolution.released) == {fx, reit}


def test_a_scaled_fx_that_fills_completely_still_funds_only_its_fraction_of_the_buy() -> None:
    tickets = sgd_tickets()
    fx = tickets["oi_fx_usd_sgd"]
    records = records_for(tickets, oi_sell_sggb_2031=(S.FILLED, "9000"), oi_sell_sgcorp_2029=(S.FILLED, "6000"),
                          oi_buy_sg_reit=(S.FILLED, "300"))
    scaled_fx_filled = record(fx, S.FILLED, "5124")
    records[fx.ticket_id] = TicketRecord(fx.ticket_id, S.FILLED, D("5124"), scaled_fx_filled.ledger, submitted_at=at(0))
    resolution = resolve(tickets, records)
    assert resolution.records[tickets["oi_buy_us_eq_etf"].ticket_id].order_qty == D(10)  # 20 * 5124/10248


# --- looking only at the dependants of what settled (``candidates``) ---------------------------------


def test_candidates_limit_the_look_to_the_tickets_named_and_what_their_cancellation_cascades_to() -> None:
    tickets = sgd_tickets()
    records = records_for(tickets, oi_sell_sggb_2031=(S.REJECTED,), oi_sell_sgcorp_2029=(S.FILLED, "6000"))
    graph = TicketGraph.of(tuple(tickets.values()))
    nothing = resolve_releases(graph, records, POLICY, at=at(9), halted=False, candidates=())
    assert nothing.released == () and nothing.steps == () and nothing.records is records
    # The FX alone is named; its cancellation takes the US BUY along, the REIT BUY is not looked at.
    fx_only = resolve_releases(graph, records, POLICY, at=at(9), halted=False,
                               candidates=[tickets["oi_fx_usd_sgd"].ticket_id])
    cancelled = {step.record.ticket_id for step in fx_only.steps}
    assert cancelled == {tickets["oi_fx_usd_sgd"].ticket_id, tickets["oi_buy_us_eq_etf"].ticket_id}
    assert fx_only.records[tickets["oi_buy_sg_reit"].ticket_id].state is S.PENDING_SUBMIT


@st.composite
def ticket_graphs(draw: st.DrawFn) -> tuple[Ticket, ...]:
    """Tickets in an order that respects their dependencies (each depends on earlier ones only)."""
    count = draw(st.integers(1, 9))
    tickets: list[Ticket] = []
    for index in range(count):
        earlier = [t.ticket_id for t in tickets]
        dependencies = tuple(sorted(draw(st.sets(st.sampled_from(earlier), max_size=3)))) if earlier else ()
        tickets.append(SecurityOrderTicket(
            f"tkt_{index:02d}", f"oi_{index:02d}", f"INSTR_{index}", draw(st.sampled_from(list(Side))),
            D(draw(st.integers(1, 50))), "USD", OrderType.MARKET, TimeInForce.DAY, dependencies, D(25),
        ))
    return tuple(tickets)


def settled(ticket: Ticket, record: TicketRecord, how: str, filled: int) -> TicketRecord:
    """``record`` settled as ``how``: FILLED, PARTIAL (cancelled with some filled), NOTHING (cancelled), REJECTED."""
    quantity = record.order_qty
    if how == "FILLED":
        state, qty = S.FILLED, quantity
    elif how == "PARTIAL" and quantity > 1:
        state, qty = S.CANCELLED, D(min(filled, int(quantity) - 1))
    elif how == "REJECTED":
        state, qty = S.REJECTED, D(0)
    else:
        state, qty = S.CANCELLED, D(0)
    ledger = FillLedger(FillReportingMode.PER_FILL, 1, qty, qty * 10) if qty else FillLedger()
    return replace(record, state=state, ledger=ledger, submitted_at=at(1))


@settings(max_examples=300, deadline=None)
@given(ticket_graphs(), st.sampled_from(list(PartialFunding)), st.data())
def test_release_with_candidates_resolves_as_a_full_scan_whatever_the_graph_and_settle_order(
    tickets: tuple[Ticket, ...], partial_funding: PartialFunding, data: st.DataObject
) -> None:
    policy = policy_of(max_slippage_bps="25", partial_funding=partial_funding)
    graph = TicketGraph.of(tickets)
    records = {t.ticket_id: TicketRecord(t.ticket_id, S.PENDING_SUBMIT, t.order_quantity) for t in tickets}
    records = dict(resolve_releases(graph, records, policy, at=at(0), halted=False).records)  # as at creation
    moment = 0
    while True:
        working = sorted(t for t, r in records.items() if r.released_for_submission and not r.is_terminal)
        if not working:
            break
        moment += 1
        ticket_id = data.draw(st.sampled_from(working))
        how = data.draw(st.sampled_from(["FILLED", "PARTIAL", "NOTHING", "REJECTED"]))
        records[ticket_id] = settled(graph.by_id[ticket_id], records[ticket_id], how, data.draw(st.integers(1, 49)))
        full = resolve_releases(tickets, records, policy, at=at(moment), halted=False)
        looked = resolve_releases(graph, records, policy, at=at(moment), halted=False,
                                  candidates=graph.dependants[ticket_id])
        assert looked.released == full.released
        assert [step.change for step in looked.steps] == [step.change for step in full.steps]
        assert dict(looked.records) == dict(full.records)
        records = dict(looked.records)
    # Nothing is stranded: every ticket was released and settled, or cancelled without release.
    assert all(record.state in TERMINAL_TICKET_STATES for record in records.values())
    label(f"tickets cancelled without release: {sum(not r.is_submitted for r in records.values()) > 0}")
    label(f"tickets scaled: {any(r.order_qty != graph.by_id[t].order_quantity for t, r in records.items())}")
