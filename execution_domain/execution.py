"""The Execution aggregate: create, apply an order event, mark a ticket released, request cancel, replay.

Every operation is a pure function ``(execution, input[, history]) -> Outcome``: a new Execution
plus what changed (the log entry with its ticket transitions and anomalies, tickets to submit,
cancel requests to send, the tickets whose state moved, and what the history must remember). No
clock reads, no randomness, no I/O; no exception escapes for a bad order event. A duplicate input
returns the same Execution and no entry.

An `Execution` is the head of an execution only: its definition, each ticket's current state and
a few counters. Its past is not carried: log entries are returned one at a time for the caller to
keep, and the few facts the fold needs from the past (fills and reports already seen, cancel
commands already handled) are looked up by id through `ExecutionHistory`. So the cost of an input
and the size of the state do not grow with the execution's history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from execution_domain.canonical import format_timestamp, parse_timestamp
from execution_domain.definition import ExecutionDefinition, ProposalRef
from execution_domain.events import OrderEvent
from execution_domain.execution_state import ExecutionState, TicketTally, state_from_facts
from execution_domain.fills import Fill, FillReportingMode
from execution_domain.history import (
    NO_HISTORY,
    NOTHING_REMEMBERED,
    ExecutionHistory,
    InMemoryHistory,
    Remembered,
)
from execution_domain.log import (
    CancelRequest,
    CreateExecution,
    ExecutionInput,
    LogEntry,
    ReleaseMark,
    input_from_primitive,
    input_time,
)
from execution_domain.policy import ExecutionPolicy, OnCriticalRejection
from execution_domain.proposal import ArtifactInvalid, ProposalArtifact, check_artifact
from execution_domain.release import resolve_releases
from execution_domain.request import Actor, RequestOrigin, request_hash
from execution_domain.ticket_state import (
    TERMINAL_TICKET_STATES,
    Anomaly,
    AnomalyCode,
    StepVerdict,
    TicketChange,
    TicketEventKind,
    TicketInput,
    TicketRecord,
    TicketState,
    TicketStep,
    apply_ticket_input,
    is_allowed,
)
from execution_domain.tickets import Ticket, generate_tickets

__all__ = [
    "ArtifactNotExecutable",
    "CancelVerdict",
    "Execution",
    "Outcome",
    "POLICY_ACTOR",
    "apply_input",
    "apply_order_event",
    "create_execution",
    "mark_released",
    "replay",
    "request_cancel",
    "tickets_awaiting_submission",
]

# Who asks for the cancels `on_critical_rejection=CANCEL_REMAINING` sends.
POLICY_ACTOR = Actor(requested_by="execution-policy", channel="ON_CRITICAL_REJECTION")


class ArtifactNotExecutable(ValueError):
    """The proposal's gate decision is not EXECUTION_READY."""


class CancelVerdict(StrEnum):
    """What a cancel command did (`request_cancel`)."""

    ACCEPTED = "ACCEPTED"  # open tickets move to PENDING_CANCEL (or CANCELLED if never released)
    ALREADY_PENDING = "ALREADY_PENDING"  # every open ticket's cancel is already in flight: nothing new
    ALREADY_HANDLED = "ALREADY_HANDLED"  # this command id was handled before
    NOTHING_TO_CANCEL = "NOTHING_TO_CANCEL"  # the execution is complete: every ticket terminal


@dataclass(frozen=True, slots=True)
class Execution:
    definition: ExecutionDefinition
    records: Mapping[str, TicketRecord]  # ticket_id -> record, in ticket order; never mutated
    state: ExecutionState
    tally: TicketTally  # counts over records, kept with them (state derivation in O(1))
    seq: int = 0  # log entries so far: the seq of the last one
    row_count: int = 0  # lifecycle rows of those entries (``LogEntry.rows()``)
    anomaly_count: int = 0
    cancel_request: CancelRequest | None = None  # the first effective cancel request
    updated_at: datetime | None = None  # the time of the last log entry (an input's own time)

    @property
    def execution_id(self) -> str:
        return self.definition.execution_id

    @property
    def tickets(self) -> tuple[Ticket, ...]:
        return self.definition.tickets

    @property
    def policy(self) -> ExecutionPolicy:
        return self.definition.policy

    @property
    def open_ticket_count(self) -> int:
        """Tickets not yet terminal: orders still working at the OMS, or not yet released."""
        return self.tally.open

    @property
    def is_complete(self) -> bool:
        """Every ticket terminal: the state will not change except through late fills."""
        return self.tally.open == 0

    def record(self, ticket_id: str) -> TicketRecord:
        return self.records[ticket_id]

    def ticket(self, ticket_id: str) -> Ticket:
        return self.definition.tickets_by_id[ticket_id]

    def ticket_for_intent(self, intent_id: str) -> Ticket:
        for ticket in self.tickets:
            if ticket.intent_id == intent_id:
                return ticket
        raise KeyError(intent_id)

    def effective_ticket(self, ticket_id: str) -> Ticket:
        """The ticket as it is (to be) submitted: scaled down when its funding was partial."""
        return self.ticket(ticket_id).with_order_quantity(self.records[ticket_id].order_qty)

    def to_primitive(self) -> dict[str, Any]:
        """The head: where each ticket stands and the counters (the definition is kept apart, once)."""
        return {
            "execution_id": self.execution_id,
            "tickets": [record.to_primitive() for record in self.records.values()],
            "state": self.state.value,
            "seq": self.seq,
            "row_count": self.row_count,
            "anomaly_count": self.anomaly_count,
            "cancel_request": None if self.cancel_request is None else self.cancel_request.to_primitive(),
            "updated_at": None if self.updated_at is None else format_timestamp(self.updated_at),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any], definition: ExecutionDefinition) -> Execution:
        if data["execution_id"] != definition.execution_id:
            raise ValueError(f"head of {data['execution_id']} given the definition of {definition.execution_id}")
        cancel = data["cancel_request"]
        records = {record.ticket_id: record for record in map(TicketRecord.from_primitive, data["tickets"])}
        return cls(
            definition=definition,
            records=records,
            state=ExecutionState(data["state"]),
            tally=_tally(definition, records),
            seq=data["seq"],
            row_count=data["row_count"],
            anomaly_count=data["anomaly_count"],
            cancel_request=None if cancel is None else _cancel_from_primitive(cancel),
            updated_at=None if data.get("updated_at") is None else parse_timestamp(data["updated_at"]),
        )


def _tally(definition: ExecutionDefinition, records: Mapping[str, TicketRecord]) -> TicketTally:
    return TicketTally.of(definition.tickets, records, definition.dependants, definition.policy)


def _cancel_from_primitive(data: Mapping[str, Any]) -> CancelRequest:
    value = input_from_primitive(data)
    assert isinstance(value, CancelRequest)
    return value


@dataclass(frozen=True, slots=True)
class Outcome:
    execution: Execution  # the new value (the same object when nothing changed)
    entry: LogEntry | None  # None: a duplicate, nothing changed, nothing logged
    tickets_to_submit: tuple[Ticket, ...] = ()  # released for submission now, quantities as to be sent
    changed_tickets: tuple[str, ...] = ()  # ticket ids whose record changed, in ticket order
    remembered: Remembered = NOTHING_REMEMBERED  # for the history: store before the next input
    cancel: CancelVerdict | None = None  # set by request_cancel

    @property
    def duplicate(self) -> bool:
        return self.entry is None

    @property
    def changes(self) -> tuple[TicketChange, ...]:
        return () if self.entry is None else self.entry.changes

    @property
    def anomalies(self) -> tuple[Anomaly, ...]:
        return () if self.entry is None else self.entry.anomalies

    @property
    def cancel_requests(self) -> tuple[str, ...]:
        """Ticket ids whose OMS order must be cancelled (``ExecutionProvider.cancel_ticket``)."""
        return () if self.entry is None else self.entry.cancel_requests

    @property
    def state_before(self) -> ExecutionState:
        if self.entry is None or self.entry.state_before is None:
            return self.execution.state
        return self.entry.state_before

    @property
    def state_after(self) -> ExecutionState:
        return self.execution.state

    @property
    def first_row_seq(self) -> int:
        """The number of the entry's first lifecycle row (rows are numbered 1.. over the whole log)."""
        return self.execution.row_count - (0 if self.entry is None else self.entry.row_count) + 1


# --- operations -----------------------------------------------------------------------------


def create_execution(
    execution_id: str,
    artifact: ProposalArtifact,
    policy: ExecutionPolicy,
    created_at: datetime,
    origin: RequestOrigin,
    *,
    artifact_inline: bool = False,
    attempt: int = 1,
) -> Outcome:
    """A new execution: every ticket PENDING_SUBMIT; tickets without dependencies released for
    submission at once (none for a dry run). Raises ArtifactInvalid / ArtifactNotExecutable.

    `artifact_inline`: the create request carried the artifact itself (RFC 3), which then is
    part of the request hash. `attempt`: which execution of this proposal version it is (the
    ticket ids depend on it; see ``tickets.ticket_id_for``)."""
    problems = check_artifact(artifact)
    if problems:
        raise ArtifactInvalid(problems)
    if not artifact.is_execution_ready:
        raise ArtifactNotExecutable(
            f"proposal {artifact.proposal_id} v{artifact.version_no} gate decision is "
            f"{artifact.gate_decision.decision.value}, not EXECUTION_READY"
        )
    definition = ExecutionDefinition(
        execution_id=execution_id,
        proposal=ProposalRef.of(artifact),
        policy=policy,
        tickets=generate_tickets(artifact, policy, attempt),
        origin=origin,
        request_hash=request_hash(
            artifact.proposal_id, artifact.version_no, policy, origin.actor,
            inline_artifact_hash=artifact.proposal_version_hash if artifact_inline else None,
        ),
        created_at=created_at,
        attempt=attempt,
    )
    return _start(definition)


def _start(definition: ExecutionDefinition) -> Outcome:
    records = {
        ticket.ticket_id: TicketRecord(ticket.ticket_id, TicketState.PENDING_SUBMIT, ticket.order_quantity)
        for ticket in definition.tickets
    }
    resolution = resolve_releases(
        definition.graph, records, definition.policy, at=definition.created_at, halted=definition.policy.dry_run
    )
    tally = _tally(definition, resolution.records)
    state = state_from_facts(tally.facts(cancel_requested=False))
    entry = LogEntry(
        seq=1,
        recorded_at=definition.created_at,
        input=CreateExecution(definition),
        changes=tuple(step.change for step in resolution.steps if step.change is not None),
        anomalies=(),
        released_for_submission=resolution.released,
        cancel_requests=(),
        state_before=None,
        state_after=state,
    )
    execution = Execution(
        definition=definition, records=resolution.records, state=state, tally=tally, seq=1, row_count=entry.row_count,
        updated_at=definition.created_at,
    )
    every_ticket = tuple(ticket.ticket_id for ticket in definition.tickets)
    return Outcome(execution, entry, _effective(execution, resolution.released), every_ticket)


def apply_order_event(execution: Execution, event: OrderEvent, history: ExecutionHistory = NO_HISTORY) -> Outcome:
    """Apply one OMS report. Never raises: what no rule allows is logged as an anomaly.

    `history` answers whether the report (by event id) or its fill (by fill id) was seen before."""
    if event.execution_id != execution.execution_id:
        return _unrouted(
            execution, event, history, AnomalyCode.WRONG_EXECUTION, f"event is for execution {event.execution_id}"
        )
    record = execution.records.get(event.ticket_id)
    if record is None:
        return _unrouted(
            execution, event, history, AnomalyCode.UNKNOWN_TICKET, f"no ticket {event.ticket_id} in this execution"
        )
    known_reports = history.reports(event.ticket_id, event.event_id)
    fill_id = event.details.fill_id
    known_fill = None if fill_id is None else history.fill(event.ticket_id, fill_id)
    step = apply_ticket_input(record, TicketInput.from_event(event), known_reports, known_fill)
    if step.verdict is StepVerdict.DUPLICATE:
        return Outcome(execution, None)
    fills: tuple[tuple[str, Fill], ...] = ()
    change = step.change
    if change is not None and change.fill is not None and step.record.ledger.mode is FillReportingMode.PER_FILL:
        fills = ((event.ticket_id, change.fill),)
    remembered = Remembered(fills=fills, reports=((event.ticket_id, event.event_id, (*known_reports, event.report_key)),))
    return _commit(execution, event, (step,), remembered=remembered)


def mark_released(
    execution: Execution, ticket_id: str, released_at: datetime, external_order_id: str | None = None
) -> Outcome:
    """Record that the processor handed a released ticket to the OMS (PENDING_SUBMIT -> SUBMITTED).

    Marking an already released ticket is a duplicate. Marking a ticket cancelled before its
    release is an anomaly and asks for a cancel at the OMS (the order may exist there now).
    """
    mark = ReleaseMark(ticket_id, released_at, external_order_id)
    record = execution.records.get(ticket_id)
    if record is None:
        reason = f"no ticket {ticket_id} in this execution"
        anomaly = Anomaly(AnomalyCode.UNKNOWN_TICKET, reason, ticket_id=ticket_id, kind=TicketEventKind.TICKET_RELEASED)
        return _commit(execution, mark, (), extra_anomalies=(anomaly,))
    given = TicketInput(TicketEventKind.TICKET_RELEASED, released_at, external_order_id=external_order_id)
    return _commit(execution, mark, (apply_ticket_input(record, given),))


def request_cancel(execution: Execution, request: CancelRequest, history: ExecutionHistory = NO_HISTORY) -> Outcome:
    """Cancel the execution: unreleased tickets become CANCELLED (never released), released open
    tickets go to PENDING_CANCEL and need a cancel request; filled quantities stay.

    Idempotent: a cancel while every open ticket's cancel is already in flight changes nothing
    (ALREADY_PENDING); a cancel of a complete execution changes nothing either and is answered
    NOTHING_TO_CANCEL. Neither writes the log: an operator's retry leaves no trace in the audit.
    """
    if history.command_handled(request.command_id):
        return Outcome(execution, None, cancel=CancelVerdict.ALREADY_HANDLED)
    handled = Remembered(commands=(request.command_id,))
    if execution.is_complete:
        return Outcome(execution, None, remembered=handled, cancel=CancelVerdict.NOTHING_TO_CANCEL)
    reason = request.reason or f"execution cancel requested by {request.actor.requested_by}"
    steps = _cancel_steps(execution.records.values(), TicketInput(TicketEventKind.CANCEL_REQUESTED, request.requested_at,
                                                                  reason=reason))
    if not steps:
        return Outcome(execution, None, remembered=handled, cancel=CancelVerdict.ALREADY_PENDING)
    outcome = _commit(execution, request, steps, remembered=handled, cancel_request=execution.cancel_request or request)
    return Outcome(outcome.execution, outcome.entry, outcome.tickets_to_submit, outcome.changed_tickets,
                   outcome.remembered, CancelVerdict.ACCEPTED)


def tickets_awaiting_submission(execution: Execution) -> tuple[Ticket, ...]:
    """Released for submission but not yet marked released: what a restarted processor must (re)submit."""
    waiting = [
        ticket_id
        for ticket_id, record in execution.records.items()
        if record.state is TicketState.PENDING_SUBMIT and record.released_for_submission
    ]
    return _effective(execution, waiting)


def replay(log: Sequence[LogEntry]) -> Execution:
    """Rebuild an execution by re-applying the inputs of its log, in order."""
    first = log[0].input
    if not isinstance(first, CreateExecution):
        raise ValueError("a log starts with its EXECUTION_CREATED entry")
    execution = _start(first.definition).execution
    history = InMemoryHistory()
    for entry in log[1:]:
        outcome = apply_input(execution, entry.input, history)
        history.remember(outcome.remembered)
        execution = outcome.execution
    return execution


def apply_input(execution: Execution, value: ExecutionInput, history: ExecutionHistory = NO_HISTORY) -> Outcome:
    """Dispatch any logged input type to its operation."""
    if isinstance(value, OrderEvent):
        return apply_order_event(execution, value, history)
    if isinstance(value, ReleaseMark):
        return mark_released(execution, value.ticket_id, value.released_at, value.external_order_id)
    if isinstance(value, CancelRequest):
        return request_cancel(execution, value, history)
    raise ValueError("an execution is created once; use create_execution")


# --- internals --------------------------------------------------------------------------------


def _effective(execution: Execution, ticket_ids: Iterable[str]) -> tuple[Ticket, ...]:
    return tuple(execution.effective_ticket(ticket_id) for ticket_id in ticket_ids)


def _cancel_steps(records: Iterable[TicketRecord], given: TicketInput) -> list[TicketStep]:
    steps = []
    for record in records:
        if is_allowed(record.state, TicketEventKind.CANCEL_REQUESTED):
            step = apply_ticket_input(record, given)
            if step.verdict is not StepVerdict.DUPLICATE:
                steps.append(step)
    return steps


def _unrouted(
    execution: Execution, event: OrderEvent, history: ExecutionHistory, code: AnomalyCode, reason: str
) -> Outcome:
    key = (event.execution_id, event.ticket_id, event.event_id)
    known = history.unrouted(key)
    if event.report_key in known:
        return Outcome(execution, None)
    kind = TicketEventKind.of_event(event.event_type)
    anomaly = Anomaly(code, reason, ticket_id=event.ticket_id, kind=kind, event_id=event.event_id)
    remembered = Remembered(unrouted=((key, (*known, event.report_key)),))
    return _commit(execution, event, (), extra_anomalies=(anomaly,), remembered=remembered)


class _Fold:
    """The records and tally of one input being folded, changed ticket by ticket."""

    def __init__(self, execution: Execution) -> None:
        self.definition = execution.definition
        self.before = execution.records
        self.records = dict(execution.records)
        self.tally = execution.tally
        self.touched: set[str] = set()

    def apply(self, step: TicketStep) -> None:
        after = step.record
        ticket_id = after.ticket_id
        previous = self.records[ticket_id]
        if after is previous or after == previous:  # e.g. a repeated acknowledgement at the same time
            return
        definition = self.definition
        self.tally = self.tally.moved(definition.tickets_by_id[ticket_id], previous, after, definition.dependants,
                                      definition.policy)
        self.records[ticket_id] = after
        self.touched.add(ticket_id)

    def take(self, records: Mapping[str, TicketRecord], ticket_ids: Iterable[str]) -> None:
        """Records a release resolution changed (released flags, scalings, dependency failures)."""
        for ticket_id in ticket_ids:
            self.apply(TicketStep(StepVerdict.APPLIED, records[ticket_id]))

    def changed(self) -> tuple[str, ...]:
        position = self.definition.graph.position
        return tuple(sorted((t for t in self.touched if self.records[t] != self.before[t]), key=position.__getitem__))


def _commit(
    execution: Execution,
    value: ExecutionInput,
    steps: Sequence[TicketStep],
    *,
    extra_anomalies: Sequence[Anomaly] = (),
    remembered: Remembered = NOTHING_REMEMBERED,
    cancel_request: CancelRequest | None = None,
) -> Outcome:
    """Fold ticket steps into the execution, resolve releases, re-derive the state, log one entry."""
    effective_steps = [step for step in steps if step.verdict is not StepVerdict.DUPLICATE]
    if not effective_steps and not extra_anomalies:
        return Outcome(execution, None, remembered=remembered)
    definition = execution.definition
    policy = definition.policy
    at = input_time(value)
    fold = _Fold(execution)
    for step in effective_steps:
        fold.apply(step)
    changes = [step.change for step in effective_steps if step.change is not None]
    anomalies = [*extra_anomalies, *(step.anomaly for step in effective_steps if step.anomaly is not None)]
    cancel_requests = [step.record.ticket_id for step in effective_steps if step.send_cancel]
    cancel = cancel_request or execution.cancel_request
    released: tuple[str, ...] = ()
    # Release decisions only depend on dependencies reaching a terminal state: look at their dependants.
    settled = [c.ticket_id for c in changes if c.to_state in TERMINAL_TICKET_STATES and c.from_state is not c.to_state]
    candidates = {dependant for ticket_id in settled for dependant in definition.dependants[ticket_id]}
    if candidates:
        halted = policy.dry_run or cancel is not None
        resolution = resolve_releases(definition.graph, fold.records, policy, at=at, halted=halted, candidates=candidates)
        decided = [step.record.ticket_id for step in resolution.steps] + list(resolution.released)
        fold.take(resolution.records, decided)
        changes.extend(step.change for step in resolution.steps if step.change is not None)
        released = resolution.released
    state = state_from_facts(fold.tally.facts(cancel is not None))
    if (state is ExecutionState.REJECTED and execution.state is not ExecutionState.REJECTED and cancel is None
            and not policy.dry_run and policy.on_critical_rejection is OnCriticalRejection.CANCEL_REMAINING):
        cancel = _cancel_remaining(execution, fold, at, changes, cancel_requests)
        if cancel is not None:
            released = tuple(t for t in released if fold.records[t].state is TicketState.PENDING_SUBMIT)
            state = state_from_facts(fold.tally.facts(True))
    entry = LogEntry(
        seq=execution.seq + 1,
        recorded_at=at,
        input=value,
        changes=tuple(changes),
        anomalies=tuple(anomalies),
        released_for_submission=released,
        cancel_requests=tuple(cancel_requests),
        state_before=execution.state,
        state_after=state,
    )
    updated = Execution(
        definition=definition,
        records=fold.records,
        state=state,
        tally=fold.tally,
        seq=entry.seq,
        row_count=execution.row_count + entry.row_count,
        anomaly_count=execution.anomaly_count + len(anomalies),
        cancel_request=cancel,
        updated_at=at,
    )
    return Outcome(updated, entry, _effective(updated, released), fold.changed(), remembered)


def _cancel_remaining(
    execution: Execution, fold: _Fold, at: datetime, changes: list[TicketChange], cancel_requests: list[str]
) -> CancelRequest | None:
    """``on_critical_rejection=CANCEL_REMAINING``: the execution just turned REJECTED; cancel every
    open ticket as an operator's cancel would, in the same log entry."""
    reason = "execution rejected: cancelling the remaining orders (on_critical_rejection=CANCEL_REMAINING)"
    steps = _cancel_steps(list(fold.records.values()), TicketInput(TicketEventKind.CANCEL_REQUESTED, at, reason=reason))
    if not steps:  # nothing open: nothing to cancel, and no cancel request recorded
        return None
    for step in steps:
        fold.apply(step)
        if step.change is not None:
            changes.append(replace(step.change, note=reason))  # the audit row says why (the policy), not an operator
        if step.send_cancel:
            cancel_requests.append(step.record.ticket_id)
    return CancelRequest(f"{execution.execution_id}/policy-cancel/{execution.seq + 1}", at, POLICY_ACTOR, reason)
