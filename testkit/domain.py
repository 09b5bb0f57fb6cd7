"""Shared builders for the execution_domain tests: samples, events, records in a given state, a driver.

The domain folds an execution's *head* and looks its past up by id (`execution_domain.history`):
`Folded` and `TicketFeed` play the caller's part the way a processor does, keeping the history
(every outcome's `remembered`) and the log entries the head no longer carries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execution_domain.events import EventDetails, OrderEvent, OrderEventType
from execution_domain.execution import (
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
from execution_domain.execution_state import TicketTally
from execution_domain.fills import FillLedger, FillReportingMode
from execution_domain.history import InMemoryHistory, Remembered
from execution_domain.log import CancelRequest, CreateExecution, ExecutionInput, LogEntry
from execution_domain.policy import ExecutionPolicy
from execution_domain.proposal import ProposalArtifact, parse_artifact
from execution_domain.request import Actor, RequestOrigin
from execution_domain.ticket_state import (
    TicketEventKind,
    TicketInput,
    TicketRecord,
    TicketState,
    TicketStep,
    apply_ticket_input,
)
from mock_oms.provider import MockExecutionProvider

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "samples" / "proposals"
GOLDEN_DIR = REPO_ROOT / "tests" / "execution_domain" / "golden"
SAMPLE_NAMES = tuple(sorted(path.stem for path in SAMPLES_DIR.glob("*.json")))

T0 = datetime(2026, 2, 18, 10, 0, 0, tzinfo=UTC)
POLICY = ExecutionPolicy(max_slippage_bps=Decimal("25"))
ORIGIN = RequestOrigin(Actor("advisor_001", "ADVISOR_APP"), idempotency_key="idem-001", correlation_id="corr-001")


def policy_of(**fields: Any) -> ExecutionPolicy:
    """A policy from its wire spelling (``max_slippage_bps="25"``, enum names as strings), validated."""
    return ExecutionPolicy.model_validate(fields)


def load_sample_raw(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return raw


def load_sample(name: str) -> ProposalArtifact:
    return parse_artifact(load_sample_raw(name))


def new_execution(
    sample: str = "sgd_multi_currency", policy: ExecutionPolicy = POLICY, execution_id: str = "exec_001",
    *, attempt: int = 1,
) -> Outcome:
    return create_execution(execution_id, load_sample(sample), policy, T0, ORIGIN, attempt=attempt)


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
    decimals: dict[str, Any] = {k: Decimal(v) if k in decimal_fields and v is not None else v for k, v in details.items()}
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


@dataclass
class TicketFeed:
    """One ticket fed as `apply_order_event` feeds it, for the ticket-level tests.

    What the history knows about an OMS report (the reports under its event id, the fill under its
    fill id) is looked up and passed to `apply_ticket_input`; what the step adds is remembered: the
    report when `step.remembers_report`, the fill applied in per-fill mode. Mutable, like a store:
    `fork()` before feeding one start two ways.
    """

    record: TicketRecord
    history: InMemoryHistory = field(default_factory=InMemoryHistory)

    @property
    def ticket_id(self) -> str:
        return self.record.ticket_id

    def step(self, given: TicketInput | OrderEvent) -> TicketStep:
        if isinstance(given, OrderEvent):
            given = TicketInput.from_event(given)
        event = given.event
        known_reports = () if event is None else self.history.reports(self.ticket_id, event.event_id)
        fill_id = None if event is None else event.details.fill_id
        known_fill = None if fill_id is None else self.history.fill(self.ticket_id, fill_id)
        step = apply_ticket_input(self.record, given, known_reports, known_fill)
        if event is not None and step.remembers_report:
            fill = None if step.change is None else step.change.fill
            per_fill = fill is not None and step.record.ledger.mode is FillReportingMode.PER_FILL
            self.history.remember(Remembered(
                fills=((self.ticket_id, fill),) if per_fill and fill is not None else (),
                reports=((self.ticket_id, event.event_id, (*known_reports, event.report_key)),),
            ))
        self.record = step.record
        return step

    def feed(self, *inputs: TicketInput | OrderEvent) -> list[TicketStep]:
        return [self.step(given) for given in inputs]

    def fork(self) -> TicketFeed:
        history = InMemoryHistory(fills=dict(self.history.fills), seen=dict(self.history.seen),
                                  unrouted_reports=dict(self.history.unrouted_reports),
                                  commands=set(self.history.commands))
        return TicketFeed(self.record, history)


def _feed(feed: TicketFeed, *inputs: TicketInput) -> TicketFeed:
    for given in inputs:
        step = feed.step(given)
        assert step.change is not None, (given, step)
    return feed


def _oms(kind: OrderEventType, event_id: str, **details: Any) -> TicketInput:
    return TicketInput.from_event(event(RECORD_ID, kind, event_id, **details))


def record_in(state: TicketState, *, released_for_submission: bool = True) -> TicketRecord:
    """A 10-unit ticket in ``state``; PARTIAL_FILL and PENDING_CANCEL have 4 filled at 100."""
    return feed_in(state, released_for_submission=released_for_submission).record


def feed_in(state: TicketState, *, released_for_submission: bool = True) -> TicketFeed:
    """`record_in(state)` with the history of the setup reports that brought it there."""
    pending = TicketFeed(TicketRecord(
        RECORD_ID, TicketState.PENDING_SUBMIT, RECORD_QTY, released_for_submission=released_for_submission
    ))
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


# --- folding an execution as a processor does -----------------------------------------------------


@dataclass
class Folded:
    """An execution folded the way a processor folds it: the head, the history the fold looks the
    past up in (every outcome's `remembered`, stored before the next input), and the log entries,
    which the head no longer carries. Mutable, like the stores it stands for."""

    execution: Execution
    history: InMemoryHistory = field(default_factory=InMemoryHistory)
    entries: list[LogEntry] = field(default_factory=list)

    @classmethod
    def start(cls, created: Outcome) -> Folded:
        """From `create_execution`'s outcome (its entry is the log's first)."""
        assert created.entry is not None and isinstance(created.entry.input, CreateExecution), created
        folded = cls(created.execution)
        folded.take(created)
        return folded

    def take(self, outcome: Outcome) -> Outcome:
        """Keep what an operation returned: remember, log, move the head."""
        self.history.remember(outcome.remembered)
        if outcome.entry is not None:
            self.entries.append(outcome.entry)
        self.execution = outcome.execution
        return outcome

    def apply(self, value: ExecutionInput) -> Outcome:
        return self.take(apply_input(self.execution, value, self.history))

    def event(self, order_event: OrderEvent) -> Outcome:
        return self.take(apply_order_event(self.execution, order_event, self.history))

    def release(self, ticket_id: str, released_at: datetime = T0, external_order_id: str | None = None) -> Outcome:
        return self.take(mark_released(self.execution, ticket_id, released_at, external_order_id))

    def cancel(self, request: CancelRequest) -> Outcome:
        return self.take(request_cancel(self.execution, request, self.history))


def fold(created: Outcome, inputs: Iterable[ExecutionInput]) -> Folded:
    folded = Folded.start(created)
    for value in inputs:
        folded.apply(value)
    return folded


def assert_head_matches_log(folded: Folded) -> None:
    """The head's counters agree with the entries kept, its tally with its records, and the entries
    replay to the same head; the head round-trips through JSON given its definition."""
    execution, entries = folded.execution, folded.entries
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert execution.seq == len(entries)
    assert execution.row_count == sum(len(entry.rows()) for entry in entries)
    assert execution.anomaly_count == sum(len(entry.anomalies) for entry in entries)
    assert execution.updated_at == entries[-1].recorded_at
    definition = execution.definition
    assert execution.tally == TicketTally.of(definition.tickets, execution.records, definition.dependants,
                                             definition.policy)
    assert replay(entries) == execution
    restored = Execution.from_primitive(json.loads(json.dumps(execution.to_primitive())), definition)
    assert restored == execution


def drive(
    start: Outcome | Folded,
    mock: MockExecutionProvider,
    *,
    deliver: Callable[[list[OrderEvent]], Sequence[OrderEvent]] | None = None,
    max_rounds: int = 50,
) -> tuple[Folded, list[Outcome]]:
    """Submit released tickets, mark them released, feed the mock's events back, until quiet.

    `start`: a creation outcome, or a `Folded` to carry on with (it is updated in place). Like a
    processor, it re-checks `tickets_awaiting_submission` before submitting and sends a cancel
    for every outcome's `cancel_requests`. ``deliver(events) -> events`` may duplicate or reorder
    each batch before it is applied. Returns the folded execution and every outcome, in order
    (the creation outcome first when `start` is one).
    """
    if isinstance(start, Folded):
        folded, outcomes, to_submit = start, [], []
    else:
        folded, outcomes, to_submit = Folded.start(start), [start], list(start.tickets_to_submit)

    def took(outcome: Outcome) -> None:
        outcomes.append(outcome)
        to_submit.extend(outcome.tickets_to_submit)
        for ticket_id in outcome.cancel_requests:
            mock.cancel_ticket(ticket_id)

    for _ in range(max_rounds):
        awaiting = {ticket.ticket_id for ticket in tickets_awaiting_submission(folded.execution)}
        batch = [ticket for ticket in to_submit if ticket.ticket_id in awaiting]
        to_submit.clear()
        if batch:
            result = mock.submit_tickets(folded.execution.execution_id, batch)
            for submission in result.submissions:
                took(folded.release(submission.ticket_id, T0, submission.external_order_id))
        events = mock.drain_events()
        if not events and not to_submit:
            return folded, outcomes
        for order_event in (deliver(events) if deliver else events):
            took(folded.event(order_event))
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


def policy_default_rows() -> list[str]:
    """How each row of the doc's policy defaults table starts: ``| `field` | default |``, from the model."""
    rows = []
    for name, info in ExecutionPolicy.model_fields.items():
        if info.is_required():
            default = "**required**"
        elif isinstance(info.default, bool):
            default = "true" if info.default else "false"
        else:
            default = str(getattr(info.default, "value", info.default))
        rows.append(f"| `{name}` | {default} |")
    return rows
