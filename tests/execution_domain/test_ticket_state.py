from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain.events import EventDetails, OrderEvent, OrderEventType, ReportKey
from execution_domain.fills import Fill, FillReportingMode
from execution_domain.ticket_state import (
    TICKET_TRANSITIONS,
    AnomalyCode,
    Derived,
    StepVerdict,
    TicketChange,
    TicketEventKind,
    TicketInput,
    TicketRecord,
    TicketState,
    TicketStep,
    apply_ticket_input,
)
from testkit.domain import (
    DOMAIN_DOC,
    RECORD_ID,
    Folded,
    TicketFeed,
    at,
    event,
    feed_in,
    input_of_kind,
    new_execution,
    record_in,
    transition_table_markdown,
)

S, K = TicketState, TicketEventKind
D = Decimal

# --- the expected table, written out independently of TICKET_TRANSITIONS --------------------------
# Cell: resulting state after a representative input (fills are 3 units @ 101 on a 10-unit ticket;
# PARTIAL_FILL and PENDING_CANCEL start with 4 filled), "=" duplicate (nothing changes), "!" anomaly.
ABBREVIATIONS = {
    "PS": S.PENDING_SUBMIT, "SUB": S.SUBMITTED, "ACC": S.ACCEPTED, "PF": S.PARTIAL_FILL,
    "PC": S.PENDING_CANCEL, "F": S.FILLED, "CXL": S.CANCELLED, "REJ": S.REJECTED,
}
COLUMNS = [
    K.TICKET_RELEASED, K.CANCEL_REQUESTED, K.DEPENDENCY_FAILED, K.DEPENDENCY_SCALED, K.ORDER_ACCEPTED,
    K.ORDER_REJECTED, K.PARTIAL_FILL, K.FILLED, K.CANCELLED, K.PENDING_CANCEL, K.CANCEL_REJECTED,
]
EXPECTED_TABLE = """
#         RELEASED CXL_REQ DEP_FAIL DEP_SCALE ACCEPTED REJECTED PARTIAL FILLED CANCELLED PEND_CXL CXL_REJ
PS        SUB      CXL     CXL      PS        ACC      REJ      PF      PF     CXL       !        !
SUB       =        PC      !        !         ACC      REJ      PF      PF     CXL       SUB      SUB
ACC       =        PC      !        !         ACC      REJ      PF      PF     CXL       ACC      ACC
PF        =        PC      !        !         PF       !        PF      PF     CXL       PF       PF
PC        =        =       !        !         PC       !        PC      PC     CXL       PC       PF
F         =        !       !        !         F        !        F       F      !         F        F
CXL       =        !       !        !         CXL      !        CXL     CXL    CXL       CXL      !
REJ       =        !       !        !         !        !        !       !      !         !        !
"""


def _parse_expected() -> dict[tuple[TicketState, TicketEventKind], str | TicketState]:
    table = {}
    for line in EXPECTED_TABLE.strip().splitlines()[1:]:
        row, *cells = line.split()
        assert len(cells) == len(COLUMNS), line
        for kind, cell in zip(COLUMNS, cells, strict=True):
            table[(ABBREVIATIONS[row], kind)] = ABBREVIATIONS.get(cell, cell)
    return table


EXPECTED = _parse_expected()
CELLS = sorted(EXPECTED, key=lambda cell: (list(S).index(cell[0]), COLUMNS.index(cell[1])))


def test_expected_table_covers_every_state_and_every_event_kind() -> None:
    assert set(EXPECTED) == {(state, kind) for state in S for kind in K}


@pytest.mark.parametrize(("state", "kind"), CELLS, ids=[f"{s.value}--{k.value}" for s, k in CELLS])
def test_every_cell_of_the_transition_table(state: TicketState, kind: TicketEventKind) -> None:
    ticket = feed_in(state)
    record = ticket.record
    step = ticket.step(input_of_kind(kind))
    expected = EXPECTED[(state, kind)]
    if expected == "=":
        assert step.verdict is StepVerdict.DUPLICATE and step.record == record
    elif expected == "!":
        assert step.verdict is StepVerdict.ANOMALY
        assert step.anomaly is not None and step.anomaly.from_state is state and step.anomaly.kind is kind
        assert step.anomaly.reason
        assert step.record.state is state and step.record.ledger == record.ledger
        if (state, kind) not in TICKET_TRANSITIONS:
            assert step.anomaly.code is AnomalyCode.INVALID_TRANSITION
    else:
        assert step.verdict is StepVerdict.APPLIED, step.anomaly
        assert step.record.state is expected
        assert step.change is not None and (change_of(step).from_state, change_of(step).to_state) == (state, expected)


# Edges whose rule depends on more than the state: tested on their own below.
GUARDED = {(S.PENDING_CANCEL, K.ORDER_REJECTED), (S.CANCELLED, K.TICKET_RELEASED)}


def test_every_edge_of_the_table_is_an_applied_or_duplicate_cell_of_the_expected_table() -> None:
    for (state, kind), edge in TICKET_TRANSITIONS.items():
        expected = EXPECTED[(state, kind)]
        if edge.target is Derived.DUPLICATE:
            assert expected == "=", (state, kind)
        elif (state, kind) not in GUARDED:
            assert expected not in ("=", "!"), (state, kind)


def test_marking_released_a_ticket_cancelled_before_release_asks_for_a_cancel() -> None:
    never_released, _ = feed(feed_in(S.PENDING_SUBMIT), TicketInput(K.CANCEL_REQUESTED, at(1)))
    step = never_released.step(input_of_kind(K.TICKET_RELEASED))
    assert step.anomaly is not None and step.anomaly.code is AnomalyCode.RELEASED_AFTER_CANCEL
    assert step.send_cancel and step.record.state is S.CANCELLED


def test_every_unusual_edge_says_why() -> None:
    # Ordinary: a fixed forward move, or a fill on an accepted/filling order. Everything else explains itself.
    for (state, kind), edge in TICKET_TRANSITIONS.items():
        ordinary_fill = edge.target is Derived.FILL and state in (S.ACCEPTED, S.PARTIAL_FILL)
        fixed_forward = isinstance(edge.target, TicketState) and not edge.requires_release
        if not (ordinary_fill or fixed_forward):
            assert edge.why, (state, kind)


# --- invariants, one by one -----------------------------------------------------------------------------


def change_of(step: TicketStep) -> TicketChange:
    assert step.change is not None, step
    return step.change


def feed(start: TicketFeed, *inputs: TicketInput | OrderEvent) -> tuple[TicketFeed, list[TicketStep]]:
    """Feed a copy of ``start`` (record and history); ``start`` itself is left as it was."""
    ticket = start.fork()
    return ticket, ticket.feed(*inputs)


def fill(fill_id: str, qty: str, price: str = "100", *, filled: bool = False, event_id: str | None = None) -> OrderEvent:
    kind = OrderEventType.FILLED if filled else OrderEventType.PARTIAL_FILL
    return event(RECORD_ID, kind, event_id or f"e-{fill_id}", fill_id=fill_id, last_qty=qty, last_price=price)


def oms(kind: OrderEventType, event_id: str, **details: Any) -> OrderEvent:
    return event(RECORD_ID, kind, event_id, **details)


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("kind", [k for k in K if k.value in OrderEventType.__members__])
def test_an_event_applied_twice_changes_nothing_the_second_time(state: TicketState, kind: TicketEventKind) -> None:
    given_input = input_of_kind(kind, event_id="twice")
    ticket = feed_in(state)
    once = ticket.step(given_input)
    twice = ticket.step(given_input)
    assert twice.verdict is StepVerdict.DUPLICATE and twice.record == once.record


def test_the_same_fill_under_a_new_event_id_is_a_duplicate() -> None:
    ticket, _ = feed(feed_in(S.ACCEPTED), fill("f1", "3"))
    record = ticket.record
    step = ticket.step(fill("f1", "3", event_id="another-delivery"))
    assert step.verdict is StepVerdict.DUPLICATE and step.record == record


def test_the_same_fill_id_with_another_quantity_is_flagged_not_dropped() -> None:
    ticket, _ = feed(feed_in(S.ACCEPTED), fill("f1", "3"))
    step = ticket.step(fill("f1", "5", event_id="e-f1-again"))
    assert step.verdict is StepVerdict.ANOMALY and step.anomaly is not None
    assert step.anomaly.code is AnomalyCode.FILL_CONFLICT
    assert step.record.filled_qty == D(3)
    assert step.remembers_report  # the caller remembers it: a redelivery of the conflicting report is then a duplicate
    assert ticket.step(fill("f1", "5", event_id="e-f1-again")).verdict is StepVerdict.DUPLICATE


def test_an_event_id_reused_for_different_content_is_flagged() -> None:
    ticket, _ = feed(feed_in(S.SUBMITTED), oms(OrderEventType.ORDER_ACCEPTED, "e-1"))
    step = ticket.step(fill("f1", "2", event_id="e-1"))
    assert step.anomaly is not None and step.anomaly.code is AnomalyCode.EVENT_ID_REUSED
    assert step.record.state is S.ACCEPTED and step.record.filled_qty == 0


def test_filled_quantity_is_the_sum_of_distinct_fills_and_average_is_quantity_weighted() -> None:
    ticket, _ = feed(feed_in(S.ACCEPTED), fill("f1", "2", "100"), fill("f2", "3", "110"), fill("f1", "2", "100"),
                     fill("f3", "5", "90", filled=True))
    record = ticket.record
    assert record.state is S.FILLED
    assert record.filled_qty == D(10) and record.ledger.fill_count == 3
    assert record.avg_price == (D(2) * 100 + D(3) * 110 + D(5) * 90) / 10


# --- what the caller looks up and remembers (the record keeps no history) ---------------------------


def test_a_record_without_its_history_takes_a_redelivered_report_for_a_new_one() -> None:
    # Whether a report or a fill was seen is the history's answer, never the record's: what the
    # caller passes in decides, which is why every caller must look up and remember.
    ticket, _ = feed(feed_in(S.ACCEPTED), fill("f1", "3"))
    report = TicketInput.from_event(fill("f1", "3"))
    blind = apply_ticket_input(ticket.record, report)
    assert blind.verdict is StepVerdict.APPLIED and blind.record.filled_qty == D(6)
    known = ticket.history.reports(RECORD_ID, "e-f1")
    assert apply_ticket_input(ticket.record, report, known).verdict is StepVerdict.DUPLICATE


def test_a_known_fill_under_a_new_event_id_is_judged_by_the_fill_passed_in() -> None:
    record = record_in(S.ACCEPTED)
    report = TicketInput.from_event(fill("f1", "3", event_id="new-delivery"))
    same = apply_ticket_input(record, report, known_fill=Fill("f1", D(3), D(100)))
    other = apply_ticket_input(record, report, known_fill=Fill("f1", D(2), D(100)))
    assert same.verdict is StepVerdict.DUPLICATE and same.record is record
    assert other.verdict is StepVerdict.ANOMALY and other.anomaly is not None
    assert other.anomaly.code is AnomalyCode.FILL_CONFLICT and other.record is record


def test_an_event_id_known_with_other_content_is_reused_whatever_the_state_allows() -> None:
    other = ReportKey(OrderEventType.ORDER_ACCEPTED, "OMS-1", EventDetails())
    step = apply_ticket_input(record_in(S.ACCEPTED), TicketInput.from_event(fill("f1", "3")), known_reports=(other,))
    assert step.anomaly is not None and step.anomaly.code is AnomalyCode.EVENT_ID_REUSED
    assert step.remembers_report


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("kind", [k for k in K if k.value in OrderEventType.__members__])
def test_every_processed_report_but_a_duplicate_is_to_be_remembered(state: TicketState, kind: TicketEventKind) -> None:
    ticket = feed_in(state)
    step = ticket.step(input_of_kind(kind, event_id="probe"))
    assert step.remembers_report is (step.verdict is not StepVerdict.DUPLICATE)
    again = ticket.step(input_of_kind(kind, event_id="probe"))
    assert again.verdict is StepVerdict.DUPLICATE and not again.remembers_report


def test_a_record_keeps_no_history_in_its_primitive_form() -> None:
    ticket, _ = feed(feed_in(S.ACCEPTED), *(fill(f"f{i}", "0.01") for i in range(40)))
    primitive = ticket.record.to_primitive()
    assert "seen_events" not in primitive and "fills" not in primitive["ledger"]
    assert primitive["ledger"]["fill_count"] == 40 and primitive["ledger"]["filled_qty"] == "0.4"
    assert TicketRecord.from_primitive(json.loads(json.dumps(primitive))) == ticket.record


def test_a_record_stored_with_seen_events_and_fills_still_decodes() -> None:
    # record_in(PARTIAL_FILL) as the previous release stored it (events and fills kept in the record).
    old = {
        "ticket_id": RECORD_ID, "state": "PARTIAL_FILL", "order_qty": "10",
        "ledger": {"mode": "PER_FILL", "fills": [{"fill_id": "setup-f1", "quantity": "4", "price": "100"}],
                   "filled_qty": "4", "notional": "400"},
        "released_for_submission": True, "submitted_at": "2026-02-18T10:00:00Z",
        "last_event_at": "2026-02-18T10:00:01Z", "external_order_id": "OMS-1", "pre_cancel_state": None,
        "reason": None,
        "seen_events": [
            {"event_id": "setup-ack", "reports": [
                {"event_type": "ORDER_ACCEPTED", "external_order_id": "OMS-1", "details": {}}]},
            {"event_id": "setup-f1", "reports": [
                {"event_type": "PARTIAL_FILL", "external_order_id": "OMS-1",
                 "details": {"fill_id": "setup-f1", "last_qty": "4", "last_price": "100"}}]},
        ],
    }
    record = TicketRecord.from_primitive(old)
    assert record == record_in(S.PARTIAL_FILL)
    assert record.ledger.fill_count == 1 and record.ledger.mode is FillReportingMode.PER_FILL


def test_an_overfill_is_recorded_and_flagged() -> None:
    ticket, steps = feed(feed_in(S.ACCEPTED), fill("f1", "8"), fill("f2", "4", filled=True))
    record = ticket.record
    assert record.state is S.FILLED and record.filled_qty == D(12) and record.overfill_qty == D(2)
    assert "OVERFILL" in change_of(steps[-1]).flags
    assert "OVERFILL" not in change_of(steps[0]).flags


def test_rejected_is_absorbing() -> None:
    record = record_in(S.REJECTED)
    for kind in K:
        step = apply_ticket_input(record, input_of_kind(kind, event_id=f"after-reject-{kind.value}"))
        assert step.record.state is S.REJECTED and step.record.filled_qty == 0


def test_filled_is_left_by_nothing() -> None:
    record = record_in(S.FILLED)
    for kind in K:
        assert apply_ticket_input(record, input_of_kind(kind, event_id=f"after-fill-{kind.value}")).record.state is S.FILLED


def test_a_fill_after_cancelled_is_recorded_as_a_late_fill() -> None:
    ticket, steps = feed(feed_in(S.CANCELLED), fill("late", "3"))
    assert ticket.record.state is S.CANCELLED and ticket.record.filled_qty == D(3)
    assert "LATE_FILL" in change_of(steps[0]).flags


def test_a_late_fill_that_completes_the_order_makes_it_filled() -> None:
    # Order independence: fills-then-cancel ends FILLED, so cancel-then-fills must too.
    ticket, _ = feed(feed_in(S.CANCELLED), fill("late1", "6"), fill("late2", "4"))
    assert ticket.record.state is S.FILLED


def test_a_fill_before_order_accepted_applies_and_implies_acceptance() -> None:
    ticket, steps = feed(feed_in(S.SUBMITTED), fill("f1", "3"))
    assert ticket.record.state is S.PARTIAL_FILL and "IMPLIED_ACCEPT" in change_of(steps[0]).flags
    ticket, steps = feed(ticket, oms(OrderEventType.ORDER_ACCEPTED, "late-ack"))
    assert ticket.record.state is S.PARTIAL_FILL and steps[0].verdict is StepVerdict.APPLIED


def test_order_accepted_after_filled_never_regresses() -> None:
    ticket, steps = feed(feed_in(S.SUBMITTED), fill("f1", "10", filled=True), oms(OrderEventType.ORDER_ACCEPTED, "late-ack"))
    assert ticket.record.state is S.FILLED and change_of(steps[-1]).from_state is change_of(steps[-1]).to_state is S.FILLED


def test_an_oms_report_for_a_ticket_never_released_for_submission_is_an_anomaly() -> None:
    record = record_in(S.PENDING_SUBMIT, released_for_submission=False)
    for kind in (K.ORDER_ACCEPTED, K.ORDER_REJECTED, K.PARTIAL_FILL, K.FILLED, K.CANCELLED, K.TICKET_RELEASED):
        step = apply_ticket_input(record, input_of_kind(kind))
        assert step.anomaly is not None and step.anomaly.code is AnomalyCode.NOT_RELEASED
        assert step.record.state is S.PENDING_SUBMIT


def test_an_oms_report_racing_the_release_mark_implies_the_release() -> None:
    ticket, steps = feed(feed_in(S.PENDING_SUBMIT), oms(OrderEventType.ORDER_ACCEPTED, "fast-ack"))
    assert ticket.record.state is S.ACCEPTED and ticket.record.submitted_at == at(1)
    assert "IMPLIED_RELEASE" in change_of(steps[0]).flags


def test_cancel_rejected_returns_to_the_state_before_the_cancel_request() -> None:
    cancel = TicketInput(K.CANCEL_REQUESTED, at(2))
    ticket, steps = feed(feed_in(S.ACCEPTED), cancel)
    assert ticket.record.state is S.PENDING_CANCEL and steps[0].send_cancel
    ticket, _ = feed(ticket, oms(OrderEventType.CANCEL_REJECTED, "cxl-rej"))
    assert ticket.record.state is S.ACCEPTED and ticket.record.pre_cancel_state is None


def test_cancel_rejected_returns_to_partial_fill_when_a_fill_arrived_while_pending() -> None:
    ticket, _ = feed(feed_in(S.SUBMITTED), TicketInput(K.CANCEL_REQUESTED, at(2)), fill("f1", "3"))
    assert ticket.record.state is S.PENDING_CANCEL
    ticket, _ = feed(ticket, oms(OrderEventType.CANCEL_REJECTED, "cxl-rej"))
    assert ticket.record.state is S.PARTIAL_FILL


def test_an_acknowledgement_while_cancel_is_pending_makes_a_refused_cancel_return_to_accepted() -> None:
    ticket, _ = feed(feed_in(S.SUBMITTED), TicketInput(K.CANCEL_REQUESTED, at(2)), oms(OrderEventType.ORDER_ACCEPTED, "ack"))
    ticket, _ = feed(ticket, oms(OrderEventType.CANCEL_REJECTED, "cxl-rej"))
    assert ticket.record.state is S.ACCEPTED


def test_a_cancel_that_loses_the_race_to_a_fill_ends_filled_with_the_fill_recorded() -> None:
    ticket, steps = feed(
        feed_in(S.ACCEPTED),
        TicketInput(K.CANCEL_REQUESTED, at(2)),
        fill("f1", "10", filled=True),
        oms(OrderEventType.CANCEL_REJECTED, "too-late", reason="too late to cancel"),
    )
    assert ticket.record.state is S.FILLED and ticket.record.filled_qty == D(10)
    assert "CANCEL_LOST_RACE" in change_of(steps[1]).flags


def test_a_cancel_confirmed_after_a_partial_fill_keeps_the_filled_quantity() -> None:
    ticket, _ = feed(feed_in(S.PARTIAL_FILL), TicketInput(K.CANCEL_REQUESTED, at(2)), oms(OrderEventType.CANCELLED, "cxl"))
    assert ticket.record.state is S.CANCELLED and ticket.record.filled_qty == D(4)


def test_an_order_rejected_while_its_cancel_is_pending_is_rejected_when_nothing_filled() -> None:
    ticket, _ = feed(feed_in(S.SUBMITTED), TicketInput(K.CANCEL_REQUESTED, at(2)), oms(OrderEventType.ORDER_REJECTED, "rej"))
    assert ticket.record.state is S.REJECTED


def test_filled_without_details_confirms_a_complete_ticket_and_is_an_anomaly_otherwise() -> None:
    complete = apply_ticket_input(record_in(S.FILLED), TicketInput.from_event(oms(OrderEventType.FILLED, "bare")))
    assert complete.verdict is StepVerdict.APPLIED and complete.record.state is S.FILLED
    incomplete = apply_ticket_input(record_in(S.PARTIAL_FILL), TicketInput.from_event(oms(OrderEventType.FILLED, "bare")))
    assert incomplete.anomaly is not None and incomplete.anomaly.code is AnomalyCode.FILL_WITHOUT_DETAILS
    assert incomplete.record.state is S.PARTIAL_FILL


def test_a_filled_report_that_does_not_reach_the_quantity_leaves_partial_fill() -> None:
    ticket, steps = feed(feed_in(S.ACCEPTED), fill("f1", "7", filled=True))
    assert ticket.record.state is S.PARTIAL_FILL and "FILLED_REPORT_INCOMPLETE" in change_of(steps[0]).flags


def test_cumulative_reports_drive_the_state_by_quantity() -> None:
    ticket, steps = feed(
        feed_in(S.ACCEPTED),
        oms(OrderEventType.PARTIAL_FILL, "c1", filled_qty="4", avg_price="100"),
        oms(OrderEventType.PARTIAL_FILL, "c0", filled_qty="2", avg_price="100"),  # stale, out of order
        oms(OrderEventType.FILLED, "c2", filled_qty="10", avg_price="106"),
    )
    assert ticket.record.state is S.FILLED and ticket.record.filled_qty == D(10) and ticket.record.avg_price == D(106)
    assert steps[1].anomaly is not None and steps[1].anomaly.code is AnomalyCode.STALE_FILL_REPORT


def test_scaling_changes_the_order_quantity_fills_count_against() -> None:
    ticket, _ = feed(feed_in(S.PENDING_SUBMIT), TicketInput(K.DEPENDENCY_SCALED, at(1), order_qty=D(6)))
    ticket, _ = feed(ticket, fill("f1", "6", filled=True))
    assert ticket.record.order_qty == D(6) and ticket.record.state is S.FILLED and ticket.record.overfill_qty == 0


# --- properties: random valid event sequences with duplicates and reorderings ---------------------


@dataclass(frozen=True)
class Story:
    events: tuple[OrderEvent, ...]  # one consistent OMS history for a 10-unit order, in OMS order


@st.composite
def stories(draw: st.DrawFn) -> Story:
    ending = draw(st.sampled_from(["FILLED", "PARTIAL_THEN_CANCELLED", "CANCELLED", "REJECTED", "OVERFILLED"]))
    cumulative = draw(st.booleans())
    acked = draw(st.booleans())
    events: list[OrderEvent] = []
    if acked:
        events.append(oms(OrderEventType.ORDER_ACCEPTED, "ack"))
    if ending == "REJECTED":
        events.append(oms(OrderEventType.ORDER_REJECTED, "rej", reason="limit breached"))
        return Story(tuple(events))
    if ending == "FILLED":
        total = D(10)
    elif ending == "OVERFILLED":
        total = D(draw(st.integers(11, 14)))
    elif ending == "PARTIAL_THEN_CANCELLED":
        total = D(draw(st.integers(1, 9)))
    else:
        total = D(0)
    parts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=6)) if total else []
    quantities, left = [], int(total)
    for part in parts:
        if left == 0:
            break
        quantities.append(min(part, left))
        left -= quantities[-1]
    if left:
        quantities.append(left)
    cumulative_qty, notional = D(0), D(0)
    for index, qty in enumerate(quantities):
        price = D(draw(st.integers(9000, 11000))) / 100
        cumulative_qty += qty
        notional += qty * price
        kind = OrderEventType.FILLED if cumulative_qty >= 10 else OrderEventType.PARTIAL_FILL
        if cumulative:
            events.append(oms(kind, f"c{index}", filled_qty=str(cumulative_qty), avg_price=str(notional / cumulative_qty)))
        else:
            events.append(oms(kind, f"f{index}", fill_id=f"fill-{index}", last_qty=str(qty), last_price=str(price)))
    if ending in ("PARTIAL_THEN_CANCELLED", "CANCELLED"):
        events.append(oms(OrderEventType.CANCELLED, "cxl", reason="expired"))
    return Story(tuple(events))


@st.composite
def cancel_race_stories(draw: st.DrawFn) -> tuple[list[TicketInput | OrderEvent], TicketState, Decimal]:
    """Our cancel request racing fills, with the OMS's reports reordered and redelivered.

    Returns the delivery order, the expected final state and the expected filled quantity.
    """
    filled_before = draw(st.integers(0, 6))
    filled_after = draw(st.integers(0, 10 - filled_before))
    total = filled_before + filled_after
    before: list[OrderEvent] = [oms(OrderEventType.ORDER_ACCEPTED, "ack")]
    if filled_before:
        before.append(fill("before", str(filled_before), filled=total == 10 and not filled_after))
    after: list[OrderEvent] = [oms(OrderEventType.PENDING_CANCEL, "pcxl")]
    if filled_after:
        after.append(fill("after", str(filled_after), filled=total == 10))
    refused = total == 10 or draw(st.booleans())
    if refused:
        after.append(oms(OrderEventType.CANCEL_REJECTED, "cxl-rej", reason="too late to cancel"))
    else:
        after.append(oms(OrderEventType.CANCELLED, "cxl"))
    # Reports sent before the request may be delivered after it; responses to it only after it.
    delayed = draw(st.lists(st.sampled_from(before), unique=True))
    on_time = [e for e in before if e not in delayed]
    sequence: list[TicketInput | OrderEvent] = [
        *draw(st.permutations(on_time)),
        TicketInput(K.CANCEL_REQUESTED, at(3)),
        *draw(st.permutations(after + delayed)),
    ]
    for _ in range(draw(st.integers(0, 5))):  # a redelivery comes after the first delivery
        events_at = [i for i, item in enumerate(sequence) if isinstance(item, OrderEvent)]
        original = draw(st.sampled_from(events_at))
        sequence.insert(draw(st.integers(original + 1, len(sequence))), sequence[original])
    if total == 10:
        expected = S.FILLED  # the fill won the race
    elif not refused:
        expected = S.CANCELLED
    else:  # cancel refused: back to where the order stood
        expected = S.PARTIAL_FILL if total else S.ACCEPTED
    return sequence, expected, D(total)


def assert_invariants(steps: list[TicketStep], start: TicketFeed, final: TicketFeed) -> None:
    previous = start.record
    applied = []  # the fills applied, in order
    for step in steps:
        record = step.record
        if step.change is not None and step.change.fill is not None:
            applied.append(step.change.fill)
        assert record.filled_qty == start.record.filled_qty + sum((f.quantity for f in applied), D(0))
        assert record.ledger.fill_count == start.record.ledger.fill_count + len(applied)
        assert record.filled_qty >= previous.filled_qty
        if previous.state is S.REJECTED:
            assert record.state is S.REJECTED
        if previous.state is S.FILLED:
            assert record.state is S.FILLED
        if record.filled_qty > record.order_qty:
            assert record.overfill_qty > 0
            if record.filled_qty > previous.filled_qty:
                assert step.change is not None and "OVERFILL" in change_of(step).flags
        if step.verdict is StepVerdict.DUPLICATE:
            assert record == previous
        if step.verdict is StepVerdict.ANOMALY:
            assert record.state is previous.state and record.ledger == previous.ledger
        previous = record
    assert final.record == previous
    if previous.ledger.mode is FillReportingMode.PER_FILL:
        # Every fill applied is in the history under its id, and the totals are theirs.
        remembered = [f for (ticket_id, _), f in final.history.fills.items() if ticket_id == RECORD_ID]
        assert sorted(remembered, key=lambda f: f.fill_id) == sorted(applied, key=lambda f: f.fill_id)
        assert previous.filled_qty == sum((f.quantity for f in remembered), D(0))
        assert previous.avg_price == sum((f.quantity * f.price for f in remembered), D(0)) / previous.filled_qty


def deliver(start: TicketFeed, inputs: Sequence[TicketInput | OrderEvent]) -> tuple[TicketFeed, list[TicketStep]]:
    return feed(start, *inputs)


def first_occurrences(inputs: Sequence[TicketInput | OrderEvent]) -> list[TicketInput | OrderEvent]:
    seen, unique = set(), []
    for item in inputs:
        key = id(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


@settings(max_examples=200, deadline=None)
@given(stories(), st.data())
def test_random_histories_with_duplicates_and_reorderings_keep_every_invariant(story: Story, data: st.DataObject) -> None:
    start = feed_in(S.SUBMITTED)
    in_order = deliver(start, list(story.events))[0].record
    duplicates = data.draw(st.lists(st.sampled_from(story.events), max_size=10))
    shuffled = data.draw(st.permutations(list(story.events) + duplicates))
    fed, steps = deliver(start, shuffled)
    assert_invariants(steps, start, fed)
    final = fed.record
    # Duplicate delivery never matters: the same record as delivering each report once.
    deduplicated, _ = deliver(start, first_occurrences(shuffled))
    assert final == deduplicated.record
    # Delivery order does not change where the ticket ends up.
    assert (final.state, final.filled_qty, final.avg_price) == (in_order.state, in_order.filled_qty, in_order.avg_price)


@settings(max_examples=200, deadline=None)
@given(cancel_race_stories())
def test_cancel_races_with_reordered_and_duplicate_delivery_keep_every_invariant(
    story: tuple[list[TicketInput | OrderEvent], TicketState, Decimal]
) -> None:
    sequence, expected_state, expected_filled = story
    start = feed_in(S.SUBMITTED)
    fed, steps = deliver(start, sequence)
    assert_invariants(steps, start, fed)
    assert fed.record == deliver(start, first_occurrences(sequence))[0].record
    assert (fed.record.state, fed.record.filled_qty) == (expected_state, expected_filled)


@settings(max_examples=100, deadline=None)
@given(stories(), st.data())
def test_a_ticket_fed_alone_looks_up_and_remembers_what_the_execution_does(story: Story, data: st.DataObject) -> None:
    # TicketFeed (the ticket-level tests' caller) against apply_order_event: same records, same history.
    created = new_execution("rfc_partial_then_fill")
    folded = Folded.start(created)
    sell = created.tickets_to_submit[0].ticket_id
    folded.release(sell, at(0), "OMS-1")
    alone = TicketFeed(folded.execution.record(sell))
    events = [replace(e, ticket_id=sell) for e in story.events]
    for order_event in data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5)))):
        step = alone.step(order_event)
        outcome = folded.event(order_event)
        assert step.record == folded.execution.record(sell)
        assert outcome.duplicate is (step.verdict is StepVerdict.DUPLICATE)
    assert alone.history == folded.history


event_types = st.sampled_from(list(OrderEventType))
anything_decimal = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, min_value=-5, max_value=20, places=2))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(S)),
    st.lists(
        st.tuples(event_types, st.sampled_from(["e1", "e2", "e3"]), st.one_of(st.none(), st.sampled_from(["f1", "f2"])),
                  anything_decimal, anything_decimal, anything_decimal, anything_decimal),
        max_size=12,
    ),
)
def test_no_exception_escapes_for_any_event_in_any_state(state: TicketState, raw_events: list[Any]) -> None:
    ticket = feed_in(state)  # with a history, so reused event and fill ids reach the conflict paths too
    for kind, event_id, fill_id, last_qty, last_price, filled_qty, avg_price in raw_events:
        details = EventDetails(fill_id=fill_id, last_qty=last_qty, last_price=last_price, filled_qty=filled_qty,
                               avg_price=avg_price)
        order_event = OrderEvent(event_id, "exec_001", RECORD_ID, "OMS_X", kind, "OMS-1", at(1), details)
        step = ticket.step(order_event)
        assert step.verdict in StepVerdict


def test_a_report_with_another_external_order_id_keeps_the_first_and_is_flagged() -> None:
    record = record_in(S.ACCEPTED)
    other_id = event(RECORD_ID, OrderEventType.ORDER_ACCEPTED, "e-x", external_order_id="OMS-2")
    step = apply_ticket_input(record, TicketInput.from_event(other_id))
    assert step.record.external_order_id == "OMS-1" and "EXTERNAL_ORDER_ID_CHANGED" in change_of(step).flags


def test_the_domain_doc_shows_the_transition_table_as_coded() -> None:
    assert transition_table_markdown() in DOMAIN_DOC.read_text(encoding="utf-8")
