"""The Execution aggregate: create, apply an order event, mark a ticket released, request cancel, replay.

Every operation is a pure function ``(execution, input) -> Outcome``: a new Execution plus
what changed (ticket transitions, anomalies, tickets to submit, cancel requests to send,
the aggregate state before/after). No clock reads, no randomness, no I/O; no exception
escapes for a bad order event. A duplicate input returns the same Execution and no entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from execution_domain.definition import ExecutionDefinition, ProposalRef
from execution_domain.events import OrderEvent, ReportKey
from execution_domain.execution_state import ExecutionState, derive_execution_state
from execution_domain.log import (
    CancelRequest,
    CreateExecution,
    ExecutionInput,
    LogEntry,
    ReleaseMark,
    input_from_primitive,
    input_time,
)
from execution_domain.policy import ExecutionPolicy
from execution_domain.proposal import ArtifactInvalid, ProposalArtifact, check_artifact
from execution_domain.release import resolve_releases
from execution_domain.request import RequestOrigin, request_hash
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
    "Execution",
    "Outcome",
    "apply_input",
    "apply_order_event",
    "create_execution",
    "mark_released",
    "replay",
    "request_cancel",
    "tickets_awaiting_submission",
]


class ArtifactNotExecutable(ValueError):
    """The proposal's gate decision is not EXECUTION_READY."""


# (execution_id, ticket_id, event_id) of events that reached no ticket of this execution.
UnroutedKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Execution:
    definition: ExecutionDefinition
    records: Mapping[str, TicketRecord]  # ticket_id -> record, in ticket order; never mutated
    state: ExecutionState
    log: tuple[LogEntry, ...]
    cancel_request: CancelRequest | None = None  # the first effective cancel request
    handled_commands: frozenset[str] = frozenset()  # cancel command ids already processed
    unrouted_events: Mapping[UnroutedKey, tuple[ReportKey, ...]] = field(default_factory=dict)  # never mutated

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
    def is_complete(self) -> bool:
        """Every ticket terminal: the state will not change except through late fills."""
        return all(record.is_terminal for record in self.records.values())

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
        return {
            "definition": self.definition.to_primitive(),
            "tickets": [record.to_primitive() for record in self.records.values()],
            "log": [entry.to_primitive() for entry in self.log],
            "state": self.state.value,
            "cancel_request": None if self.cancel_request is None else self.cancel_request.to_primitive(),
            "handled_commands": sorted(self.handled_commands),
            "unrouted_events": [
                {
                    "execution_id": key[0],
                    "ticket_id": key[1],
                    "event_id": key[2],
                    "reports": [report.to_primitive() for report in reports],
                }
                for key, reports in self.unrouted_events.items()
            ],
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> Execution:
        cancel = data["cancel_request"]
        records = [TicketRecord.from_primitive(item) for item in data["tickets"]]
        return cls(
            definition=ExecutionDefinition.from_primitive(data["definition"]),
            records={record.ticket_id: record for record in records},
            state=ExecutionState(data["state"]),
            log=tuple(LogEntry.from_primitive(item) for item in data["log"]),
            cancel_request=None if cancel is None else _cancel_from_primitive(cancel),
            handled_commands=frozenset(data["handled_commands"]),
            unrouted_events={
                (item["execution_id"], item["ticket_id"], item["event_id"]): tuple(
                    ReportKey.from_primitive(report) for report in item["reports"]
                )
                for item in data["unrouted_events"]
            },
        )


def _cancel_from_primitive(data: Mapping[str, Any]) -> CancelRequest:
    value = input_from_primitive(data)
    assert isinstance(value, CancelRequest)
    return value


@dataclass(frozen=True, slots=True)
class Outcome:
    execution: Execution  # the new value (the same object when nothing changed)
    entry: LogEntry | None  # None: a duplicate, nothing changed, nothing logged
    tickets_to_submit: tuple[Ticket, ...] = ()  # released for submission now, quantities as to be sent

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


# --- operations -----------------------------------------------------------------------------


def create_execution(
    execution_id: str,
    artifact: ProposalArtifact,
    policy: ExecutionPolicy,
    created_at: datetime,
    origin: RequestOrigin,
    *,
    artifact_inline: bool = False,
) -> Outcome:
    """A new execution: every ticket PENDING_SUBMIT; tickets without dependencies released for
    submission at once (none for a dry run). Raises ArtifactInvalid / ArtifactNotExecutable.

    `artifact_inline`: the create request carried the artifact itself (RFC 3), which then is
    part of the request hash."""
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
        tickets=generate_tickets(artifact, policy),
        origin=origin,
        request_hash=request_hash(
            artifact.proposal_id, artifact.version_no, policy, origin.actor,
            inline_artifact_hash=artifact.proposal_version_hash if artifact_inline else None,
        ),
        created_at=created_at,
    )
    return _start(definition)


def _start(definition: ExecutionDefinition) -> Outcome:
    records = {
        ticket.ticket_id: TicketRecord(ticket.ticket_id, TicketState.PENDING_SUBMIT, ticket.order_quantity)
        for ticket in definition.tickets
    }
    resolution = resolve_releases(
        definition.tickets, records, definition.policy, at=definition.created_at, halted=definition.policy.dry_run
    )
    state = derive_execution_state(
        definition.tickets, resolution.records, definition.dependants, definition.policy, cancel_requested=False
    )
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
    execution = Execution(definition=definition, records=resolution.records, state=state, log=(entry,))
    return Outcome(execution, entry, _effective(execution, resolution.released))


def apply_order_event(execution: Execution, event: OrderEvent) -> Outcome:
    """Apply one OMS report. Never raises: what no rule allows is logged as an anomaly."""
    if event.execution_id != execution.execution_id:
        return _unrouted(
            execution, event, AnomalyCode.WRONG_EXECUTION, f"event is for execution {event.execution_id}"
        )
    record = execution.records.get(event.ticket_id)
    if record is None:
        return _unrouted(execution, event, AnomalyCode.UNKNOWN_TICKET, f"no ticket {event.ticket_id} in this execution")
    step = apply_ticket_input(record, TicketInput.from_event(event))
    return _commit(execution, event, (step,))


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


def request_cancel(execution: Execution, request: CancelRequest) -> Outcome:
    """Cancel the execution: unreleased tickets become CANCELLED (never released), released open
    tickets go to PENDING_CANCEL and need a cancel request; filled quantities stay."""
    if request.command_id in execution.handled_commands:
        return Outcome(execution, None)
    reason = request.reason or f"execution cancel requested by {request.actor.requested_by}"
    given = TicketInput(TicketEventKind.CANCEL_REQUESTED, request.requested_at, reason=reason)
    steps = []
    for record in execution.records.values():
        if is_allowed(record.state, TicketEventKind.CANCEL_REQUESTED):
            step = apply_ticket_input(record, given)
            if step.verdict is not StepVerdict.DUPLICATE:
                steps.append(step)
    handled = execution.handled_commands | {request.command_id}
    if not steps:
        reason = "no ticket is open or unreleased"
        anomaly = Anomaly(AnomalyCode.NOTHING_TO_CANCEL, reason, kind=TicketEventKind.CANCEL_REQUESTED)
        return _commit(replace(execution, handled_commands=handled), request, (), extra_anomalies=(anomaly,))
    cancel_request = execution.cancel_request or request
    return _commit(replace(execution, handled_commands=handled, cancel_request=cancel_request), request, steps)


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
    for entry in log[1:]:
        execution = apply_input(execution, entry.input).execution
    return execution


def apply_input(execution: Execution, value: ExecutionInput) -> Outcome:
    """Dispatch any logged input type to its operation."""
    if isinstance(value, OrderEvent):
        return apply_order_event(execution, value)
    if isinstance(value, ReleaseMark):
        return mark_released(execution, value.ticket_id, value.released_at, value.external_order_id)
    if isinstance(value, CancelRequest):
        return request_cancel(execution, value)
    raise ValueError("an execution is created once; use create_execution")


# --- internals --------------------------------------------------------------------------------


def _effective(execution: Execution, ticket_ids: Iterable[str]) -> tuple[Ticket, ...]:
    return tuple(execution.effective_ticket(ticket_id) for ticket_id in ticket_ids)


def _unrouted(execution: Execution, event: OrderEvent, code: AnomalyCode, reason: str) -> Outcome:
    key = (event.execution_id, event.ticket_id, event.event_id)
    known = execution.unrouted_events.get(key, ())
    if event.report_key in known:
        return Outcome(execution, None)
    unrouted = dict(execution.unrouted_events)
    unrouted[key] = known + (event.report_key,)
    kind = TicketEventKind.of_event(event.event_type)
    anomaly = Anomaly(code, reason, ticket_id=event.ticket_id, kind=kind, event_id=event.event_id)
    return _commit(replace(execution, unrouted_events=unrouted), event, (), extra_anomalies=(anomaly,))


def _commit(
    execution: Execution,
    value: ExecutionInput,
    steps: Sequence[TicketStep],
    *,
    extra_anomalies: Sequence[Anomaly] = (),
) -> Outcome:
    """Fold ticket steps into the execution, resolve releases, re-derive the state, log one entry."""
    effective_steps = [step for step in steps if step.verdict is not StepVerdict.DUPLICATE]
    if not effective_steps and not extra_anomalies:
        return Outcome(execution, None)
    definition = execution.definition
    at = input_time(value)
    records = dict(execution.records)
    for step in effective_steps:
        records[step.record.ticket_id] = step.record
    changes = [step.change for step in effective_steps if step.change is not None]
    anomalies = [*extra_anomalies, *(step.anomaly for step in effective_steps if step.anomaly is not None)]
    cancel_requests = tuple(step.record.ticket_id for step in effective_steps if step.send_cancel)
    released: tuple[str, ...] = ()
    # Release decisions only depend on dependencies reaching a terminal state.
    if any(c.to_state in TERMINAL_TICKET_STATES and c.from_state is not c.to_state for c in changes):
        halted = definition.policy.dry_run or execution.cancel_request is not None
        resolution = resolve_releases(definition.tickets, records, definition.policy, at=at, halted=halted)
        records = dict(resolution.records)
        changes.extend(step.change for step in resolution.steps if step.change is not None)
        released = resolution.released
    state = derive_execution_state(
        definition.tickets, records, definition.dependants, definition.policy, execution.cancel_request is not None
    )
    entry = LogEntry(
        seq=len(execution.log) + 1,
        recorded_at=at,
        input=value,
        changes=tuple(changes),
        anomalies=tuple(anomalies),
        released_for_submission=released,
        cancel_requests=cancel_requests,
        state_before=execution.state,
        state_after=state,
    )
    updated = replace(execution, records=records, state=state, log=execution.log + (entry,))
    return Outcome(updated, entry, _effective(updated, released))
