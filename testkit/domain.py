"""Shared builders for the execution_domain tests: samples, events, records in a given state, a driver."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execution_domain.events import EventDetails, OrderEvent, OrderEventType
from execution_domain.execution import Execution, Outcome, apply_order_event, create_execution, mark_released
from execution_domain.fills import FillLedger
from execution_domain.policy import ExecutionPolicy
from execution_domain.proposal import ProposalArtifact, parse_artifact
from execution_domain.request import Actor, RequestOrigin
from execution_domain.ticket_state import TicketEventKind, TicketInput, TicketRecord, TicketState, apply_ticket_input
from execution_domain.tickets import Ticket
from mock_oms.provider import MockExecutionProvider

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "samples" / "proposals"
GOLDEN_DIR = REPO_ROOT / "tests" / "execution_domain" / "golden"
SAMPLE_NAMES = tuple(sorted(path.stem for path in SAMPLES_DIR.glob("*.json")))

T0 = datetime(2026, 2, 18, 10, 0, 0, tzinfo=UTC)
POLICY = ExecutionPolicy(max_slippage_bps=Decimal("25"))
ORIGIN = RequestOrigin(Actor("advisor_001", "ADVISOR_APP"), idempotency_key="idem-001", correlation_id="corr-001")


def load_sample_raw(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def load_sample(name: str) -> ProposalArtifact:
    return parse_artifact(load_sample_raw(name))


def new_execution(
    sample: str = "sgd_multi_currency", policy: ExecutionPolicy = POLICY, execution_id: str = "exec_001"
) -> Outcome:
    return create_execution(execution_id, load_sample(sample), policy, T0, ORIGIN)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    ticket_id: str,
    event_type: OrderEventType,
    event_id: str,
    *,
    execution_id: str = "exec_001",
    external_order_id: str | None = "OMS-1",
    seconds: int = 1,
    **details: Any,
) -> OrderEvent:
    decimal_fields = ("last_qty", "last_price", "filled_qty", "avg_price")
    decimals = {k: Decimal(v) if k in decimal_fields and v is not None else v for k, v in details.items()}
    return OrderEvent(
        event_id=event_id,
        execution_id=execution_id,
        ticket_id=ticket_id,
        source="OMS_X",
        event_type=event_type,
        external_order_id=external_order_id,
        occurred_at=at(seconds),
        details=EventDetails(**decimals),
    )


def fill_event(
    ticket_id: str, fill_id: str, qty: str, price: str, *, event_id: str | None = None, filled: bool = False, **kw: Any
) -> OrderEvent:
    kind = OrderEventType.FILLED if filled else OrderEventType.PARTIAL_FILL
    return event(ticket_id, kind, event_id or f"ev-{fill_id}", fill_id=fill_id, last_qty=qty, last_price=price, **kw)


# --- a ticket record in any state, reached through the state machine itself -------------------

RECORD_ID = "tkt_record0001"
RECORD_QTY = Decimal("10")


def _feed(record: TicketRecord, *inputs: TicketInput) -> TicketRecord:
    for given in inputs:
        step = apply_ticket_input(record, given)
        assert step.change is not None, (given, step)
        record = step.record
    return record


def _oms(kind: OrderEventType, event_id: str, **details: Any) -> TicketInput:
    return TicketInput.from_event(event(RECORD_ID, kind, event_id, **details))


def record_in(state: TicketState, *, released_for_submission: bool = True) -> TicketRecord:
    """A 10-unit ticket in ``state``; PARTIAL_FILL and PENDING_CANCEL have 4 filled at 100."""
    pending = TicketRecord(
        RECORD_ID, TicketState.PENDING_SUBMIT, RECORD_QTY, released_for_submission=released_for_submission
    )
    released = TicketInput(TicketEventKind.TICKET_RELEASED, at(0), external_order_id="OMS-1")
    accepted = _oms(OrderEventType.ORDER_ACCEPTED, "setup-ack")
    partial = _oms(OrderEventType.PARTIAL_FILL, "setup-f1", fill_id="setup-f1", last_qty=4, last_price=100)
    if state is TicketState.PENDING_SUBMIT:
        return pending
    if state is TicketState.SUBMITTED:
        return _feed(pending, released)
    if state is TicketState.ACCEPTED:
        return _feed(pending, released, accepted)
    if state is TicketState.PARTIAL_FILL:
        return _feed(pending, released, accepted, partial)
    if state is TicketState.PENDING_CANCEL:
        return _feed(pending, released, accepted, partial, TicketInput(TicketEventKind.CANCEL_REQUESTED, at(0)))
    if state is TicketState.FILLED:
        full = _oms(OrderEventType.FILLED, "setup-fall", fill_id="setup-fall", last_qty=RECORD_QTY, last_price=100)
        return _feed(pending, released, accepted, full)
    if state is TicketState.CANCELLED:
        return _feed(pending, released, accepted, _oms(OrderEventType.CANCELLED, "setup-cxl"))
    if state is TicketState.REJECTED:
        return _feed(pending, released, _oms(OrderEventType.ORDER_REJECTED, "setup-rej", reason="no"))
    raise AssertionError(state)


def input_of_kind(kind: TicketEventKind, *, event_id: str = "probe", **details: Any) -> TicketInput:
    """A representative input of ``kind``; fills are 3 units at 101 unless given."""
    if kind is TicketEventKind.TICKET_RELEASED:
        return TicketInput(kind, at(5), external_order_id="OMS-1")
    if kind is TicketEventKind.CANCEL_REQUESTED:
        return TicketInput(kind, at(5), reason="advisor cancelled")
    if kind is TicketEventKind.DEPENDENCY_FAILED:
        return TicketInput(kind, at(5), reason="dependency rejected")
    if kind is TicketEventKind.DEPENDENCY_SCALED:
        return TicketInput(kind, at(5), order_qty=Decimal(6))
    if kind in (TicketEventKind.PARTIAL_FILL, TicketEventKind.FILLED) and not details:
        details = {"fill_id": f"fill-{event_id}", "last_qty": Decimal(3), "last_price": Decimal(101)}
    return TicketInput.from_event(event(RECORD_ID, OrderEventType(kind.value), event_id, seconds=5, **details))


def with_ledger(record: TicketRecord, ledger: FillLedger) -> TicketRecord:
    return replace(record, ledger=ledger)


# --- driving an execution against the mock OMS ---------------------------------------------------


def drive(
    outcome: Outcome,
    mock: MockExecutionProvider,
    *,
    deliver: Any = None,
    max_rounds: int = 50,
) -> tuple[Execution, list[Outcome]]:
    """Submit released tickets, mark them released, feed the mock's events back, until quiet.

    ``deliver(events) -> events`` may duplicate or reorder each batch before it is applied.
    """
    execution = outcome.execution
    outcomes = [outcome]
    to_submit: list[Ticket] = list(outcome.tickets_to_submit)
    for _ in range(max_rounds):
        if to_submit:
            result = mock.submit_tickets(execution.execution_id, to_submit)
            for submission in result.submissions:
                marked = mark_released(execution, submission.ticket_id, T0, submission.external_order_id)
                execution = marked.execution
                outcomes.append(marked)
            to_submit = []
        batch = mock.drain_events()
        if not batch:
            return execution, outcomes
        for order_event in (deliver(batch) if deliver else batch):
            applied = apply_order_event(execution, order_event)
            execution = applied.execution
            outcomes.append(applied)
            to_submit.extend(applied.tickets_to_submit)
            for ticket_id in applied.cancel_requests:
                mock.cancel_ticket(ticket_id)
    raise AssertionError("the mock OMS did not go quiet")


def released_ticket_ids(outcomes: Iterable[Outcome]) -> list[str]:
    return [ticket.ticket_id for outcome in outcomes for ticket in outcome.tickets_to_submit]


# --- documentation rendered from the code's own tables -------------------------------------------

DOMAIN_DOC = REPO_ROOT / "docs" / "domain.md"


def transition_table_markdown() -> str:
    from execution_domain.ticket_state import TICKET_TRANSITIONS, TicketState

    lines = ["| from | event | to | guard / why |", "| --- | --- | --- | --- |"]
    for (state, kind), edge in TICKET_TRANSITIONS.items():
        target = edge.target.value if isinstance(edge.target, TicketState) else f"*{edge.target.value}*"
        why = ("released for submission only; " if edge.requires_release else "") + edge.why
        lines.append(f"| {state.value} | {kind.value} | {target} | {why} |")
    return "\n".join(lines)


def precedence_table_markdown() -> str:
    from execution_domain.execution_state import PRECEDENCE

    lines = ["| # | execution state | when |", "| --- | --- | --- |"]
    for number, row in enumerate(PRECEDENCE, start=1):
        lines.append(f"| {number} | {row.state.value} | {row.meaning} |")
    return "\n".join(lines)
